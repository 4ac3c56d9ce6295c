"""``doctor``: is this installation set up right? The effective configuration and a checklist with fixes.

What OPA 1.22.3 offers for this, checked against the real binary: ``GET /health`` answers 200 once the
server serves (and is exempt from nothing: with ``--authorization=basic`` the ``system.authz`` policy decides
it too); ``GET /health?bundles=true`` answers 500 until every configured bundle is activated (200 when none
is configured); OPA sends no version header, but ``?provenance=true`` on a data query adds
``{"provenance": {"version": ...}}`` to the answer. So the decision check and the version check are one
request: the decision for a sample worker pod, with provenance, through the hook's own ``DecisionClient``
(the same URL, TLS settings and token as the hook).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import ipaddress
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import requests
from rich.table import Table
from rich.text import Text

from .._version import __version__
from ..config import KEYS, Settings, Source, read_raw, settings_from_raw
from ..decision import parse_decision
from ..errors import ConfigError, OpaMutationError, OpaUnavailable
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    JSON_SCHEMA_VERSION,
    OpaProvider,
    handle_errors,
    load_config_file,
    make_output,
    opa_options,
    output_options,
)

#: The OPA version this release is tested with (scripts/versions.env).
PINNED_OPA = "1.22.3"

#: A KubernetesExecutor worker pod as Airflow builds it: the decision must be defined for it.
SAMPLE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "doctor-check-0a1b2c3d",
        "namespace": "airflow",
        "labels": {
            "dag_id": "airflow_opa_mutation_doctor",
            "task_id": "check",
            "run_id": "manual__2026-01-01T000000-0000-0a1b2c3d4",
            "try_number": "1",
            "map_index": "-1",
            "kubernetes_executor": "True",
            "airflow-worker": "0",
            "airflow_version": "3.3.2",
        },
        "annotations": {
            "dag_id": "airflow_opa_mutation_doctor",
            "task_id": "check",
            "run_id": "manual__2026-01-01T00:00:00+00:00",
            "try_number": "1",
        },
    },
    "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "base", "image": "apache/airflow:3.3.2", "args": ["airflow", "tasks", "run"]}],
    },
}

_SECRET_KEYS = frozenset({"token"})


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str | None = None


def _loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    if urlsplit(settings.url).scheme == "https":
        session.verify = settings.ca_bundle or True
        if settings.client_cert:
            session.cert = (settings.client_cert, settings.client_key) if settings.client_key else settings.client_cert
    token = settings.token
    if settings.token_file:
        token = Path(settings.token_file).read_text().strip()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def run_checks(settings: Settings, *, local: bool) -> tuple[list[Check], dict[str, Any]]:
    """The checklist against the OPA ``settings`` names; also returns facts (version, decision)."""
    checks: list[Check] = []
    facts: dict[str, Any] = {}
    parts = urlsplit(settings.url)
    https = parts.scheme == "https"
    timeout = max(settings.timeout, 5.0)
    session = _session(settings)
    with session:
        # reachability and TLS
        try:
            health = session.get(f"{settings.url}/health", timeout=timeout)
        except requests.exceptions.SSLError as exc:
            checks.append(
                Check(
                    "reachable",
                    "fail",
                    f"TLS handshake with {settings.url} failed: {exc}",
                    "set ca_bundle to the CA that signed OPA's certificate (and client_cert/client_key "
                    "if OPA requires mTLS)",
                )
            )
            return checks, facts
        except requests.RequestException as exc:
            checks.append(
                Check(
                    "reachable",
                    "fail",
                    f"no answer from {settings.url}: {type(exc).__name__}",
                    "start OPA beside Airflow (opa run --server --addr 127.0.0.1:8181 policies/) "
                    "or correct [opa_mutation] url",
                )
            )
            return checks, facts
        if health.status_code in (401, 403):
            checks.append(Check("reachable", "ok", f"{settings.url} answers (GET /health: HTTP {health.status_code})"))
        elif health.status_code == 404:
            checks.append(
                Check(
                    "reachable",
                    "fail",
                    f"GET {settings.url}/health: HTTP 404: no OPA at this URL",
                    "correct [opa_mutation] url (scheme, host, port and any path prefix of a proxy in front of OPA)",
                )
            )
        elif health.status_code != 200:
            checks.append(
                Check(
                    "reachable",
                    "fail",
                    f"GET {settings.url}/health: HTTP {health.status_code}",
                    "OPA is not healthy: read its log",
                )
            )
        else:
            checks.append(Check("reachable", "ok", f"{settings.url} answers GET /health"))
        if local:
            checks.append(Check("tls", "skip", "a local OPA on loopback started by this command"))
        elif https:
            verified = f"verified with {settings.ca_bundle}" if settings.ca_bundle else "verified with the system CAs"
            mtls = ", client certificate sent" if settings.client_cert else ""
            checks.append(Check("tls", "ok", f"HTTPS, server certificate {verified}{mtls}"))
        elif _loopback(parts.hostname):
            checks.append(Check("tls", "ok", "plain HTTP on loopback (an OPA sidecar)"))
        else:
            checks.append(
                Check(
                    "tls",
                    "warn",
                    f"plain HTTP to {parts.hostname}: pods and decisions cross the network unencrypted",
                    "serve OPA with --tls-cert-file/--tls-private-key-file, use an https:// url and set ca_bundle",
                )
            )

        # the decision, its version, and authentication
        hook_settings = dataclasses.replace(settings, breaker_threshold=1_000_000)
        from .._opa_client import DecisionClient

        client = DecisionClient(hook_settings)
        payload = {
            "pod": SAMPLE_POD,
            "airflow": {
                "dag_id": "airflow_opa_mutation_doctor",
                "task_id": "check",
                "try_number": 1,
                "map_index": -1,
                "run_id": "manual__2026-01-01T00:00:00+00:00",
                "launcher": "kubernetes_executor",
            },
            "request": {"uid": str(uuid.uuid4()), "version": __version__, "mode": "dry-run"},
        }
        try:
            response = client.query(payload, params="provenance=true")
        except OpaUnavailable as exc:
            if exc.status in (401, 403):
                checks.append(
                    Check(
                        "auth",
                        "fail",
                        f"OPA refused the decision request: HTTP {exc.status}",
                        "set token or token_file to a token OPA's system.authz policy accepts",
                    )
                )
            else:
                checks.append(
                    Check(
                        "decision",
                        "fail",
                        f"the decision request failed: {exc.reason}",
                        "read OPA's log; a policy evaluation error names the rule",
                    )
                )
            return checks, facts
        finally:
            client.close()
        body = response.body if isinstance(response.body, dict) else {}
        provenance = body.get("provenance") if isinstance(body.get("provenance"), dict) else {}
        version = provenance.get("version") if isinstance(provenance, dict) else None
        facts["opa_version"] = version
        if settings.token or settings.token_file:
            checks.append(Check("auth", "ok", "the bearer token is accepted"))
            try:
                anonymous = requests.post(
                    f"{settings.url}/v1/data/{settings.decision_path}",
                    json={"input": payload},
                    timeout=timeout,
                    verify=session.verify,
                    cert=session.cert,
                )
                if anonymous.status_code == 200:
                    checks.append(
                        Check(
                            "auth",
                            "warn",
                            "OPA also answers without a token",
                            "run OPA with --authentication=token --authorization=basic and a system.authz policy",
                        )
                    )
            except requests.RequestException:
                pass
        elif not local:
            checks.append(
                Check(
                    "auth",
                    "ok" if _loopback(parts.hostname) else "warn",
                    "no token configured" + (" (loopback sidecar)" if _loopback(parts.hostname) else ""),
                    None
                    if _loopback(parts.hostname)
                    else "set token_file and run OPA with --authentication=token --authorization=basic",
                )
            )
        if not isinstance(version, str):
            checks.append(Check("opa version", "warn", "OPA did not report its version (?provenance=true)"))
        elif version.split(".")[0].isdigit() and int(version.split(".")[0]) < 1:
            checks.append(
                Check(
                    "opa version",
                    "fail",
                    f"OPA {version}: the library is Rego v1",
                    f"upgrade OPA to {PINNED_OPA} (docker-compose.yml pins it)",
                )
            )
        elif version != PINNED_OPA:
            checks.append(
                Check(
                    "opa version",
                    "warn",
                    f"OPA {version}; this release is tested with {PINNED_OPA}",
                    f"run OPA {PINNED_OPA} (docker-compose.yml pins it)",
                )
            )
        else:
            checks.append(Check("opa version", "ok", f"OPA {version} (the pinned version)"))
        try:
            decision = parse_decision(body, decision_path=settings.decision_path)
        except OpaMutationError as exc:
            checks.append(
                Check(
                    "decision",
                    "fail",
                    f"{settings.decision_path}: {exc.reason}",
                    "load the policy library into OPA (opa run --server policies/) or correct "
                    "[opa_mutation] decision_path",
                )
            )
        else:
            facts["decision"] = {
                "ops": len(decision.patch),
                "deny": len(decision.deny),
                "warn": len(decision.warn),
                "policies": list(decision.policies),
            }
            checks.append(
                Check(
                    "decision",
                    "ok",
                    f"data.{settings.decision_path.replace('/', '.')} is defined for a "
                    f"sample worker pod: {len(decision.patch)} op(s), {len(decision.deny)} deny, "
                    f"{len(decision.warn)} warn",
                )
            )

        # bundles
        try:
            bundles = session.get(f"{settings.url}/health", params={"bundles": "true"}, timeout=timeout)
        except requests.RequestException as exc:
            checks.append(Check("bundles", "fail", f"GET /health?bundles=true: {type(exc).__name__}"))
        else:
            if bundles.status_code == 200:
                checks.append(Check("bundles", "ok", "every configured bundle is activated (or none is configured)"))
            else:
                checks.append(
                    Check(
                        "bundles",
                        "fail",
                        f"GET /health?bundles=true: HTTP {bundles.status_code}: a bundle is not activated yet",
                        "check OPA's log for the bundle service's errors (URL, credentials, signature)",
                    )
                )
    return checks, facts


def _entry_point_check() -> Check:
    try:
        names = [ep.value for ep in importlib.metadata.entry_points(group="airflow.policy")]
    except Exception:  # pragma: no cover - broken metadata
        names = []
    if "airflow_opa_mutation.plugin" in names:
        return Check("registered", "ok", "the airflow.policy entry point is installed: Airflow calls the hook")
    return Check(
        "registered",
        "warn",
        "no airflow.policy entry point for this package",
        "pip install airflow-opa-mutation into the scheduler and worker images, or import the hook in "
        "airflow_local_settings.py",
    )


def _mode_checks(settings: Settings) -> list[Check]:
    checks = []
    if settings.mode == "dry-run":
        checks.append(
            Check(
                "mode",
                "warn",
                "mode = dry-run: decisions are logged, nothing is mutated or denied",
                "set [opa_mutation] mode = enforce once the dry-run logs look right",
            )
        )
    else:
        checks.append(Check("mode", "ok", "mode = enforce"))
    if settings.fail_mode == "open":
        checks.append(
            Check(
                "fail_mode",
                "warn",
                "fail_mode = open: when OPA fails, pods go out unmutated",
                "set fail_mode = closed if the policies are security controls",
            )
        )
    else:
        checks.append(Check("fail_mode", "ok", "fail_mode = closed: no pod goes out without a decision"))
    return checks


def _shown(source: Source) -> str | None:
    if source.raw is None:
        return None
    return "<set>" if source.key in _SECRET_KEYS else source.raw


@click.command()
@opa_options
@output_options
@handle_errors("doctor")
def doctor(url: str | None, policies: Path | None, config_file: Path | None, output_format: str, color: str) -> None:
    """Check the setup: the effective configuration (and where each value came from), OPA reachability,
    TLS and authentication, OPA's version, that the decision is defined for a sample pod, and bundle status.

    Prints a checklist with a fix for each failure.

    Exit status: 0 no check failed (warnings allowed), 1 a check failed, 2 usage or runtime error.
    """
    output = make_output(output_format, color)
    sources = read_raw()
    if url is not None:
        sources = {**sources, "url": Source("url", "--url", url)}
    checks: list[Check] = []
    facts: dict[str, Any] = {}
    try:
        settings: Settings | None = settings_from_raw(sources)
        checks.append(Check("configuration", "ok", "every [opa_mutation] value is valid"))
    except ConfigError as exc:
        settings = None
        checks.append(
            Check(
                "configuration",
                "fail",
                str(exc),
                f"correct {exc.key} (environment variable "
                f"AIRFLOW__OPA_MUTATION__{exc.key.upper()} or [opa_mutation] {exc.key} in airflow.cfg)",
            )
        )
    checks.append(_entry_point_check())
    if settings is not None:
        checks.extend(_mode_checks(settings))
    if policies is not None:
        config = load_config_file(config_file) if config_file is not None else None
        with OpaProvider(policies=policies, config=config, warn=output.err.print) as provider:
            hook = provider.hook()
            found, facts = run_checks(hook.settings, local=True)
            checks.extend(found)
    elif settings is not None:
        if config_file is not None:
            from ._common import CliError

            raise CliError("--config needs --policies: a running OPA serves its own configuration data")
        found, facts = run_checks(settings, local=False)
        checks.extend(found)
    code = EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK
    configuration = [{"key": key, "value": _shown(sources[key]), "origin": sources[key].origin} for key in KEYS]
    if output.json:
        output.emit_json(
            {
                "schema_version": JSON_SCHEMA_VERSION,
                "command": "doctor",
                "exit_code": code,
                "configuration": configuration,
                "checks": [dataclasses.asdict(c) for c in checks],
                "facts": facts,
            }
        )
        raise click.exceptions.Exit(code)
    table = Table(title="effective configuration ([opa_mutation])", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from")
    defaults = Settings()
    for row in configuration:
        value = row["value"]
        shown = Text(str(value)) if value is not None else Text(f"{getattr(defaults, str(row['key']))!s}", style="dim")
        table.add_row(row["key"], shown, row["origin"])
    output.console.print(table)
    output.console.print()
    styles = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red"), "skip": ("skip", "dim")}
    for c in checks:
        label, style = styles[c.status]
        line = Text(f"[{label:^4}] ", style=style)
        line.append(f"{c.name}: ", style="bold")
        line.append(c.detail)
        output.console.print(line)
        if c.fix and c.status in ("fail", "warn"):
            output.console.print(Text(f"       fix: {c.fix}", style="cyan"))
    failed = sum(1 for c in checks if c.status == "fail")
    output.console.print()
    output.console.print(
        Text(
            f"{failed} check(s) failed" if failed else "all checks passed", style="bold red" if failed else "bold green"
        )
    )
    raise click.exceptions.Exit(code)
