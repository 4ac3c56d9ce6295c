"""``bundle build``, ``bundle keygen`` and ``bundle keys``: the policy library as a signed OPA bundle for the
sidecars, and the keys they trust.

The building itself is in ``_bundle_builder`` (see its docstring for what goes into the bundle).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._bundle_builder import DEFAULT_ALG, DEFAULT_KEY_ID, SIGNING_ALGS, BundleError, build, keygen, trusted_keys
from ._errors import EXIT_FAILED


def _fail(exc: BundleError) -> click.exceptions.Exit:
    click.echo(f"error: {exc}", err=True)
    return click.exceptions.Exit(EXIT_FAILED)


@click.group()
def bundle() -> None:
    """Build a signed OPA bundle of the policies (bundle build ...) or make a key pair (bundle keygen ...).

    `bundle keys` prints the sidecars' trusted keys (AOM_BUNDLE_KEYS).

    The same tool as scripts/bundle-build. Exit status: 0 built, 1 the build failed, 2 usage error.
    """


@bundle.command("build")
@click.option(
    "--policies",
    type=click.Path(path_type=Path),
    default=Path("policies"),
    help="The policy library (default: policies).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="The organisation's configuration, YAML or JSON: a data file (airflow: pod: config: ...) "
    "or just the configuration (policies: ..., exempt: ...).",
)
@click.option("--revision", help="The bundle revision (default: git describe of the policies, else the version).")
@click.option("--signing-key", type=click.Path(path_type=Path), help="PEM private key to sign with.")
@click.option("--signing-alg", type=click.Choice(SIGNING_ALGS), default=DEFAULT_ALG, show_default=True)
@click.option("--key-id", default=DEFAULT_KEY_ID, show_default=True, help="Key name sidecars know the key by.")
@click.option(
    "--scope",
    help="The deployment the bundle is for (the sidecars' AOM_DEPLOYMENT): they refuse a bundle signed for "
    "another scope. Required with --signing-key.",
)
@click.option(
    "--verification-key",
    type=click.Path(path_type=Path),
    help="PEM public key: check the built bundle verifies with it.",
)
@click.option("--unsigned", is_flag=True, help="Build without a signature (local experiments only).")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=Path("build/bundle/bundle.tar.gz"), show_default=True
)
@click.option("--opa", help="The OPA binary (default: $AOM_OPA_BIN, else opa on PATH).")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse to build when an exemption has expired or the library advises against the configuration "
    "(an exempt_images entry not pinned by digest, a namespace glob in a global exemption): the warnings "
    "that would otherwise be printed. Exemptions ending within 14 days stay warnings.",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Leave the library uncompiled: no generated module (lib/compiled.generated.rego); every decision "
    "then merges the configuration and reaches each policy by name, as when loaded from disk.",
)
def build_command(  # noqa: PLR0917 - one parameter per click option
    policies: Path,
    config: Path | None,
    revision: str | None,
    signing_key: Path | None,
    signing_alg: str,
    key_id: str,
    verification_key: Path | None,
    unsigned: bool,
    output: Path,
    opa: str | None,
    scope: str | None,
    strict: bool,
    dynamic: bool,
) -> None:
    """Build and sign the policy bundle: the Rego of --policies (no tests, samples or READMEs) and the
    configuration, with a .manifest claiming airflow/pod, signed by `opa build` for one --scope.

    A configuration error always fails the build; expired exemptions and the library's advisories are
    warnings, errors with --strict. The library is compiled for the configuration (see `compile`; the
    bundle's lib/compiled.generated.rego) unless --dynamic."""
    if signing_key is not None and scope is None:
        raise _fail(BundleError("--scope is required: the deployment the bundle is for (its sidecars' AOM_DEPLOYMENT)"))
    try:
        result = build(
            policies,
            output,
            config=config,
            revision=revision,
            signing_key=signing_key,
            signing_alg=signing_alg,
            key_id=key_id,
            verification_key=verification_key,
            unsigned=unsigned,
            opa=opa,
            scope=scope,
            strict=strict,
            dynamic=dynamic,
        )
    except BundleError as exc:
        raise _fail(exc) from None
    for advisory in result.advisories:
        click.echo(f"warning: {advisory}", err=True)
    click.echo(result.summary())


@bundle.command("keygen")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/bundle-keys"), show_default=True)
@click.option("--key-id", default=DEFAULT_KEY_ID, show_default=True)
@click.option("--bits", type=int, default=3072, show_default=True)
def keygen_command(out: Path, key_id: str, bits: int) -> None:
    """Generate an RSA signing key pair: <key-id>.pem (private, mode 0600) and <key-id>.pub.pem."""
    try:
        private, public = keygen(out, key_id, bits)
    except BundleError as exc:
        raise _fail(exc) from None
    click.echo(f"private key: {private} (keep it secret)\npublic key:  {public} (give it to every sidecar)")


@bundle.command("keys")
@click.argument("public_keys", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--signing-alg", type=click.Choice(SIGNING_ALGS), default=DEFAULT_ALG, show_default=True)
def keys_command(public_keys: tuple[Path, ...], signing_alg: str) -> None:
    """Print the sidecars' AOM_BUNDLE_KEYS: OPA's `keys` for every <key id>.pub.pem given, as one JSON line.

    Every key listed is trusted; the signature's keyid picks one. Rotation lists the old and new keys,
    then the new one alone (docs/running-at-scale.md, "Key rotation").
    """
    try:
        keys = trusted_keys(list(public_keys), signing_alg)
    except BundleError as exc:
        raise _fail(exc) from None
    click.echo(json.dumps(keys, separators=(",", ":"), sort_keys=True))


__all__ = ["bundle"]
