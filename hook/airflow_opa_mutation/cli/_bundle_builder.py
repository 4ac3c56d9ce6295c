"""Build the policy library as a signed OPA bundle (``airflow-opa-mutation bundle build``, ``cli/bundle.py``).

The bundle is what a fleet of OPA sidecars polls (``deploy/opa/config.yaml``): the Rego in ``policies/``
(tests, samples and READMEs left out) plus the organisation's configuration merged into
``data.airflow.pod.config``, with a ``.manifest`` claiming the root ``airflow/pod`` and naming a
revision, signed by OPA itself (``opa build --signing-key``) so a sidecar configured with the public key
refuses anything else.

The decision-log mask (``deploy/opa/mask.rego``, package ``system.log``) is *not* bundled: each sidecar
loads it from its own file system at start-up, so it masks from the very first decision, including the
ones OPA logs before any bundle is activated (see docs/running-at-scale.md).

Once built, OPA evaluates the library's verdict on the staged configuration (``policies/lib/config.rego``):
a configuration error (an unknown key, a value of the wrong type, a malformed ``expires``) fails the build
naming the key, and no bundle is written; an advisory (an exemption wider than it looks), an expired
exemption and one ending within 14 days (OPA's clock) are returned as warnings. ``strict`` refuses the
build on an advisory or an expired exemption as well (one ending soon stays a warning).

Here: the building (``build``), reading a bundle back (``inspect``, ``manifest_of``) and the signing key
pair (``keygen``, with the ``cryptography`` package).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ._compiler import BUNDLE_PATH, CompileError, compile_library, is_generated
from ._local_opa import OpaNotFound, opa_binary
from ._policy_config import ADVISORIES_QUERY, ERRORS_QUERY, EXPIRY_QUERY, expiry_split, load_yaml

#: The bundle owns everything under data.airflow.pod; nothing else (system.log stays local).
ROOTS = ("airflow/pod",)
#: Where the organisation's configuration lives (policies/lib/config.rego reads it there).
CONFIG_PATH = ("airflow", "pod", "config")
DEFAULT_KEY_ID = "airflow_bundle"
DEFAULT_ALG = "RS256"
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_DATA_FILES = ("data.json", "data.yaml", "data.yml")
_KEY_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class BundleError(Exception):
    """Building the bundle failed; the message says why and what to do."""


@dataclass
class BuildResult:
    output: Path
    revision: str
    roots: tuple[str, ...]
    files: list[str]
    excluded: dict[str, list[str]] = field(default_factory=dict)
    signed: bool = True
    key_id: str | None = None
    scope: str | None = None
    sha256: str = ""
    advisories: list[str] = field(default_factory=list)
    compiled: tuple[str, ...] | None = None  #: the enabled policies compiled in; None: the dynamic form

    def summary(self) -> str:
        skipped = ", ".join(f"{len(paths)} {kind}" for kind, paths in sorted(self.excluded.items()) if paths)
        signature = f"signed {self.key_id}" if self.signed else "UNSIGNED"
        if self.signed and self.scope:
            signature += f" for scope {self.scope}"
        form = "dynamic" if self.compiled is None else f"compiled for {len(self.compiled)} enabled policies"
        return (
            f"built {self.output}: revision {self.revision}, roots {','.join(self.roots)}, "
            f"{len(self.files)} files ({signature}, {form}); left out: {skipped or 'nothing'}; sha256 {self.sha256}"
        )


# -- collecting the sources ------------------------------------------------------------------------------


def _classify(relative: Path) -> str | None:
    """``None`` when the file goes into the bundle, else the reason it is left out."""
    name = relative.name
    if any(part.startswith(".") for part in relative.parts):
        return "hidden"
    if name.endswith("_test.rego"):
        return "tests"
    if name.endswith(".rego"):
        return None
    if name in _DATA_FILES:
        return None if len(relative.parts) == 1 else "nested data"
    if name.endswith(".sample") or "samples" in relative.parts[:-1]:
        return "samples"
    if name.lower().startswith("readme"):
        return "readmes"
    return "other"


def collect(policies: Path) -> tuple[list[Path], dict[str, list[str]]]:
    """The Rego and data files of ``policies`` that belong in the bundle, and what was left out, by kind."""
    if not policies.is_dir():
        raise BundleError(f"policies directory {policies} does not exist")
    included: list[Path] = []
    excluded: dict[str, list[str]] = {}
    for path in sorted(policies.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(policies)
        reason = _classify(relative)
        if reason is None and relative.suffix == ".rego" and is_generated(path):
            reason = "generated"  # compiled for some configuration: the build compiles again
        if reason is None:
            included.append(relative)
        else:
            excluded.setdefault(reason, []).append(relative.as_posix())
    if excluded.get("nested data"):
        # Where OPA puts a data file found below the top folder depends on how it is loaded (bundle
        # or plain directory); refuse rather than guess. Configuration belongs in --config.
        raise BundleError(
            "data files below the top of the policies directory are not supported: "
            + ", ".join(excluded["nested data"])
            + " (put shipped data in policies/data.yaml and the organisation's in --config)"
        )
    if not any(p.suffix == ".rego" for p in included):
        raise BundleError(f"no Rego policies found in {policies}")
    return included, excluded


def _load_document(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BundleError(f"{path}: not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the cli and test extras
        raise BundleError(
            f"{path}: reading YAML needs PyYAML (pip install 'airflow-opa-mutation[cli]') or use a .json file"
        ) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: not valid YAML: {exc}") from None


def _merge(base: Any, extra: Any, where: str) -> Any:
    """OPA's rule for several data files: objects merge key by key, any other clash is an error."""
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(base[key], value, f"{where}.{key}") if key in base else value
        return merged
    raise BundleError(
        f"{where} is set both by the shipped policies/data.yaml and by the configuration file; "
        "OPA refuses two data files setting the same value"
    )


def load_config(path: Path) -> dict[str, Any]:
    """The organisation's configuration file, in either of the two forms the project uses, as a document
    rooted at OPA's ``data``:

    - the *data file* form, ``{"airflow": {"pod": {"config": {...}}}}`` (what ``opa run --server policies/
      FILE`` loads, see policies/data.yaml); nothing but ``airflow.pod.config`` may be set;
    - the *delta* form, the ``data.airflow.pod.config`` object itself (``policies``, ``exempt``), as the
      command-line tool's ``--config`` and the samples' ``config:`` take it.

    A top-level ``airflow`` key means the first form: the configuration itself never has one.
    """
    if not path.is_file():
        raise BundleError(f"configuration file {path} does not exist")
    doc = _load_document(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BundleError(f"{path}: expected a mapping (the configuration), got {type(doc).__name__}")
    if "airflow" not in doc:
        node: Any = doc
        for key in reversed(CONFIG_PATH):
            node = {key: node}
        return dict(node)
    node = doc
    for depth, key in enumerate(CONFIG_PATH):
        if not isinstance(node, dict) or set(node) - {key}:
            stray = sorted(set(node) - {key}) if isinstance(node, dict) else [type(node).__name__]
            prefix = ".".join(CONFIG_PATH[:depth]) or "the top level"
            raise BundleError(
                f"{path}: only data.{'.'.join(CONFIG_PATH)} may be configured; found {stray} under {prefix} "
                "(give either the whole airflow: pod: config: document or just the configuration, not both)"
            )
        node = node.get(key, {})
    if not isinstance(node, dict):
        raise BundleError(f"{path}: data.{'.'.join(CONFIG_PATH)} must be a mapping, got {type(node).__name__}")
    return doc


# -- the revision ----------------------------------------------------------------------------------------


def default_revision(policies: Path) -> str:
    """``git describe --tags --always --dirty`` of the policies' repository, else the package version."""
    git = shutil.which("git")
    if git:
        try:
            done = subprocess.run(
                [git, "-C", str(policies), "describe", "--tags", "--always", "--dirty"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return __version__


# -- building ----------------------------------------------------------------------------------------------


def _run_opa(opa: str, args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run([opa, *args], cwd=cwd, check=False, capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise BundleError(f"cannot run OPA ({opa}): {exc}") from None
    if done.returncode != 0:
        raise BundleError(f"opa {args[0]} failed:\n{(done.stderr or done.stdout).strip()}")
    return done.stdout


def _review_configuration(opa: str, stage: Path, *, strict: bool = False) -> list[str]:
    """The library's verdict on the staged bundle's configuration: raises on an error (with ``strict``,
    on an advisory or an expired exemption too), returns the warnings. A library without
    ``lib/config.rego``'s rules has nothing to say."""
    query = (
        f"errors := [e | some e in {ERRORS_QUERY}]; advisories := [a | some a in {ADVISORIES_QUERY}]; "
        f"expiry := [x | some x in {EXPIRY_QUERY}]"
    )
    answer: dict[str, Any] = json.loads(_run_opa(opa, ["eval", "--bundle", ".", "--format", "json", query], stage))
    results: list[dict[str, Any]] = answer.get("result") or [{}]
    bindings: dict[str, Any] = results[0].get("bindings", {})
    errors = [str(e) for e in bindings.get("errors", [])]
    if errors:
        raise BundleError("the configuration has errors; nothing was built:\n  " + "\n  ".join(sorted(errors)))
    advisories = sorted(str(a) for a in bindings.get("advisories", []))
    entries = sorted((e for e in bindings.get("expiry", []) if isinstance(e, dict)), key=lambda e: str(e["exemption"]))
    expired, expiring = expiry_split(entries)
    if strict and (advisories or expired):
        raise BundleError(
            "--strict: the configuration has expired exemptions or exemptions wider than they look; "
            "nothing was built:\n  " + "\n  ".join([*expired, *advisories])
        )
    return [*expired, *advisories, *expiring]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_arguments(
    signing_key: Path | None,
    unsigned: bool,
    verification_key: Path | None,
    signing_alg: str,
    key_id: str,
    *,
    scope: str | None = None,
) -> None:
    if signing_key is None and not unsigned:
        raise BundleError("a --signing-key is required (sidecars refuse unsigned bundles); --unsigned for tests only")
    if signing_key is not None and unsigned:
        raise BundleError("--unsigned and --signing-key exclude each other")
    if signing_key is not None and not signing_key.is_file():
        raise BundleError(f"signing key {signing_key} does not exist")
    if verification_key is not None and not verification_key.is_file():
        raise BundleError(f"verification key {verification_key} does not exist")
    if signing_alg not in SIGNING_ALGS:
        raise BundleError(f"--signing-alg {signing_alg}: expected one of {', '.join(SIGNING_ALGS)}")
    if not _KEY_ID.match(key_id):
        raise BundleError(f"--key-id {key_id!r}: use letters, digits, '_', '-' and '.' (it names an OPA config key)")
    if scope is not None and not _KEY_ID.match(scope):
        raise BundleError(f"--scope {scope!r}: use letters, digits, '_', '-' and '.' (the deployment's name)")
    if scope is not None and signing_key is None:
        raise BundleError("--scope is a claim of the signature: it needs a --signing-key")


def _bundle_data(policies: Path, files: list[Path], config: Path | None) -> tuple[Any, dict[str, Any]]:
    """The bundle's data (the shipped data files merged with ``config``) and the manifest's metadata."""
    data: Any = {}
    for relative in files:
        if relative.name in _DATA_FILES:
            shipped = _load_document(policies / relative)
            if shipped is not None:
                if not isinstance(shipped, dict):
                    raise BundleError(f"{policies / relative}: expected a mapping")
                data = _merge(data, shipped, "data")
    metadata: dict[str, Any] = {"airflow_opa_mutation": {"version": __version__}}
    if config is not None:
        data = _merge(data, load_config(config), "data")
        metadata["airflow_opa_mutation"]["config"] = {"file": config.name, "sha256": _sha256(config)}
    _check_within_roots(data)
    return data, metadata


def _stage(stage: Path, policies: Path, files: list[Path], data: Any, manifest: dict[str, Any]) -> None:
    """The bundle's tree as ``opa build --bundle`` reads it: the Rego, ``data.json`` and ``.manifest``."""
    stage.mkdir()
    for relative in files:
        if relative.suffix == ".rego":
            target = stage / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(policies / relative, target)
    if data:
        (stage / "data.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    (stage / ".manifest").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _signing_args(signing_key: Path, signing_alg: str, key_id: str, scope: str | None, tmp: Path) -> list[str]:
    claims = tmp / "claims.json"
    # The key id travels in the signature's payload ("keyid"): a sidecar whose config names no
    # bundles.<name>.signing.keyid picks this key from its `keys`, which is what lets old and
    # new keys be trusted side by side during a rotation. The scope names the deployment the bundle
    # is for: a sidecar whose bundles.<name>.signing.scope differs refuses it ("scope mismatch"), so a
    # bundle signed for one deployment cannot be served to another that trusts the same key.
    payload: dict[str, str] = {"keyid": key_id}
    if scope is not None:
        payload["scope"] = scope
    claims.write_text(json.dumps(payload))
    return ["--signing-key", str(signing_key.resolve()), "--signing-alg", signing_alg, "--claims-file", str(claims)]


def _verify(
    opa: str, bundle: Path, verification_key: Path, *, key_id: str, signing_alg: str, scope: str | None, tmp: Path
) -> None:
    """``opa build`` re-reads the bundle, checking its signature (and scope) with ``verification_key``."""
    args = ["build", "--bundle", str(bundle), "--verification-key", str(verification_key.resolve())]
    args += ["--verification-key-id", key_id, "--signing-alg", signing_alg, "--output", str(tmp / "verified.tar.gz")]
    if scope is not None:
        args += ["--scope", scope]
    _run_opa(opa, args, tmp)


def build(
    policies: Path,
    output: Path,
    *,
    config: Path | None = None,
    revision: str | None = None,
    signing_key: Path | None = None,
    signing_alg: str = DEFAULT_ALG,
    key_id: str = DEFAULT_KEY_ID,
    verification_key: Path | None = None,
    unsigned: bool = False,
    opa: str | None = None,
    scope: str | None = None,
    strict: bool = False,
    dynamic: bool = False,
) -> BuildResult:
    """Stage, build with ``opa build -b``, sign, and check the result; see the module docstring. Unless
    ``dynamic``, the library is compiled for the configuration (``_compiler``) once it has passed review."""
    _check_arguments(signing_key, unsigned, verification_key, signing_alg, key_id, scope=scope)
    try:
        opa = opa_binary(opa)
    except OpaNotFound as exc:
        raise BundleError(str(exc)) from None
    policies = policies.resolve()
    output = output.resolve()
    files, excluded = collect(policies)
    revision = revision or default_revision(policies)
    data, metadata = _bundle_data(policies, files, config)
    manifest = {"revision": revision, "roots": list(ROOTS), "rego_version": 1, "metadata": metadata}

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aom-bundle-") as tmp:
        stage = Path(tmp) / "bundle"
        _stage(stage, policies, files, data, manifest)
        # Written next to the output and renamed into place once checked: a bundle server serving
        # ``output`` never sees a half-written or unverified bundle.
        pending = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        args = ["build", "--bundle", ".", "--output", str(pending)]
        if signing_key is not None:
            args += _signing_args(signing_key, signing_alg, key_id, scope, Path(tmp))
        try:
            _run_opa(opa, args, stage)
            # after the build: OPA's own errors come first
            advisories = _review_configuration(opa, stage, strict=strict)
            compiled = None if dynamic else _compile_into(opa, stage)
            if compiled is not None:
                _run_opa(opa, args, stage)  # again, with the generated module
            if verification_key is not None:
                _verify(
                    opa, pending, verification_key, key_id=key_id, signing_alg=signing_alg, scope=scope, tmp=Path(tmp)
                )
            _check_members(inspect(pending), signed=signing_key is not None)
            os.replace(pending, output)
        finally:
            pending.unlink(missing_ok=True)
    members = inspect(output)
    return BuildResult(
        output=output,
        revision=revision,
        roots=ROOTS,
        files=sorted(members),
        excluded=excluded,
        signed=signing_key is not None,
        key_id=key_id if signing_key is not None else None,
        scope=scope,
        sha256=_sha256(output),
        advisories=advisories,
        compiled=compiled,
    )


def _compile_into(opa: str, stage: Path) -> tuple[str, ...]:
    """Writes the library compiled for the staged configuration into the stage (``BUNDLE_PATH``)."""
    try:
        compiled = compile_library(stage, None, opa=opa, source="the bundle's library and configuration")
    except CompileError as exc:
        raise BundleError(f"compiling the library for the configuration failed: {exc}") from None
    target = stage / BUNDLE_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(compiled.text)
    return compiled.enabled


def _check_within_roots(data: Any) -> None:
    if not isinstance(data, dict):
        raise BundleError("the bundle's data must be a mapping")
    outside = [key for key in data if key != "airflow"]
    airflow = data.get("airflow", {})
    if isinstance(airflow, dict):
        outside += [f"airflow.{key}" for key in airflow if key != "pod"]
    else:
        outside.append("airflow")
    if outside:
        raise BundleError(f"data outside the bundle root {ROOTS[0]}: {sorted(outside)}")


def inspect(bundle: Path) -> dict[str, bytes]:
    """The bundle's files (names without the leading '/'), read back from the tarball."""
    members: dict[str, bytes] = {}
    with tarfile.open(bundle, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    members[member.name.lstrip("/")] = handle.read()
    return members


def manifest_of(bundle: Path) -> dict[str, Any]:
    manifest = json.loads(inspect(bundle)[".manifest"])
    if not isinstance(manifest, dict):
        raise BundleError(f"{bundle}: .manifest is not an object")
    return manifest


def _check_members(members: Mapping[str, bytes], *, signed: bool) -> None:
    """Re-read what OPA wrote: a manifest with our roots, a signature, and nothing that should stay out."""
    if ".manifest" not in members:
        raise BundleError("opa build wrote no .manifest")
    if signed and ".signatures.json" not in members:
        raise BundleError("opa build wrote no .signatures.json")
    leaked = [n for n in members if n.endswith(("_test.rego", ".sample")) or Path(n).name.lower().startswith("readme")]
    if leaked:
        raise BundleError(f"files that must stay out of the bundle got in: {leaked}")


# -- key generation -----------------------------------------------------------------------------------------


def keygen(directory: Path, key_id: str = DEFAULT_KEY_ID, bits: int = 3072) -> tuple[Path, Path]:
    """Write ``<key_id>.pem`` (private, mode 0600) and ``<key_id>.pub.pem`` into ``directory``."""
    # Without the cli extra this raises ModuleNotFoundError: the console script names the extra (_extras).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not _KEY_ID.match(key_id):
        raise BundleError(f"--key-id {key_id!r}: use letters, digits, '_', '-' and '.'")
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{key_id}.pem", directory / f"{key_id}.pub.pem"
    if private.exists():
        raise BundleError(f"{private} exists; refusing to overwrite a signing key")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def trusted_keys(public_keys: Sequence[Path], algorithm: str = DEFAULT_ALG) -> dict[str, dict[str, str]]:
    """OPA's ``keys`` configuration for these public keys, each named by its file: ``<key id>.pub.pem``.

    The sidecar reads it from ``AOM_BUNDLE_KEYS`` (``keys: ${AOM_BUNDLE_KEYS}`` in deploy/opa/config.yaml),
    a one-line JSON object, so trusting another key changes a ConfigMap, never the container's command.
    """
    if not public_keys:
        raise BundleError("name at least one public key (<key id>.pub.pem)")
    if algorithm not in SIGNING_ALGS:
        raise BundleError(f"--signing-alg {algorithm}: expected one of {', '.join(SIGNING_ALGS)}")
    keys: dict[str, dict[str, str]] = {}
    for path in public_keys:
        if not path.name.endswith(".pub.pem") or not _KEY_ID.match(path.name.removesuffix(".pub.pem")):
            raise BundleError(f"{path}: expected <key id>.pub.pem (what bundle keygen writes)")
        key_id = path.name.removesuffix(".pub.pem")
        if key_id in keys:
            raise BundleError(f"key id {key_id} given twice")
        if not path.is_file():
            raise BundleError(f"public key {path} does not exist")
        pem = path.read_text().strip()
        if not pem.startswith("-----BEGIN PUBLIC KEY-----"):
            raise BundleError(f"{path}: not a PEM public key (never give the private key to the sidecars)")
        keys[key_id] = {"algorithm": algorithm, "key": pem}
    return keys
