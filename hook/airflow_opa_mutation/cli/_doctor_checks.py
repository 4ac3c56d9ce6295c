"""The checks ``doctor`` runs, one function each, listed in order in :data:`CONFIG_CHECKS` and
:data:`OPA_CHECKS`.

What OPA 1.22.3 offers for this, checked against the real binary: ``GET /health`` answers 200 once the
server serves (and is exempt from nothing: with ``--authorization=basic`` the ``system.authz`` policy decides
it too); ``GET /health?bundles=true`` answers 500 until every configured bundle is activated (200 when none
is configured); OPA sends no version header, but ``?provenance=true`` on a data query adds
``{"provenance": {"version": ...}}`` to the answer. So the decision check and the version check are one
request: the decision for a sample worker pod, with provenance, through the hook's own ``DecisionClient``
(the same URL, TLS settings and token as the hook). Health and bundle status go through OPA's management
API client (``_opa_admin``), set up from the same settings. Whether OPA accepts writes is one harmless
``PUT /v1/data/airflow_opa_mutation_doctor_probe`` (deleted again if it was accepted): the shipped
``deploy/opa/authz.rego`` answers it 401.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import ipaddress
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from .._opa_client import DecisionClient
from .._opa_endpoint import OpaEndpoint, opa_endpoint
from .._version import MIN_OPA_VERSION, OPA_VERSION, __version__
from ..config import Settings
from ..decision import Decision, parse_decision
from ..errors import OpaMutationError, OpaUnavailable
from ._opa_admin import admin_client, health_url
from ._policy_config import (
    ADVISORY_FIX,
    ERROR_FIX,
    EXPIRY_FIX,
    config_errors,
    expiry_split,
    fetch_advisories,
    fetch_expiry,
)

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

SAMPLE_AIRFLOW = {
    "dag_id": "airflow_opa_mutation_doctor",
    "task_id": "check",
    "try_number": 1,
    "map_index": -1,
    "run_id": "manual__2026-01-01T00:00:00+00:00",
    "launcher": "kubernetes_executor",
}


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str | None = None


class StopChecks(Exception):
    """OPA cannot be asked further (no answer, no decision): ``check`` is the last finding."""

    def __init__(self, check: Check) -> None:
        self.check = check
        super().__init__(check.detail)


def _loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


# -- the configuration, before any OPA is asked -----------------------------------------------------------


def check_registered() -> list[Check]:
    """Runs whatever the settings: the entry point is what makes Airflow call the hook."""
    try:
        names = [ep.value for ep in importlib.metadata.entry_points(group="airflow.policy")]
    except Exception:  # pragma: no cover - broken metadata
        names = []
    if "airflow_opa_mutation.plugin" in names:
        return [Check("registered", "ok", "the airflow.policy entry point is installed: Airflow calls the hook")]
    fix = (
        "pip install airflow-opa-mutation into the scheduler and worker images, or import the hook in "
        "airflow_local_settings.py"
    )
    return [Check("registered", "warn", "no airflow.policy entry point for this package", fix)]


def check_mode(settings: Settings) -> list[Check]:
    if settings.mode == "dry-run":
        detail = "mode = dry-run: decisions are logged, nothing is mutated or denied"
        return [Check("mode", "warn", detail, "set [opa_mutation] mode = enforce once the dry-run logs look right")]
    if settings.mode == "off":
        detail = "mode = off (the kill switch): pods are not evaluated nor mutated, OPA is not asked"
        return [Check("mode", "warn", detail, "set [opa_mutation] mode = enforce (or dry-run) after the incident")]
    return [Check("mode", "ok", "mode = enforce")]


def check_fail_mode(settings: Settings) -> list[Check]:
    if settings.fail_mode == "open":
        detail = "fail_mode = open: when OPA fails, pods go out unmutated"
        return [Check("fail_mode", "warn", detail, "set fail_mode = closed if the policies are security controls")]
    return [Check("fail_mode", "ok", "fail_mode = closed: no pod goes out without a decision")]


#: Where the KubernetesPodOperator lives; found without importing Airflow.
_KPO_MODULE = "airflow.providers.cncf.kubernetes.operators.pod"


def check_kpo_backstop(settings: Settings) -> list[Check]:
    """The KubernetesPodOperator calls the hook inside the task's own process, where DAG code can skip it:
    for those pods the hook is no boundary, Kubernetes admission must be (docs/threat-model.md)."""
    try:
        kpo = importlib.util.find_spec(_KPO_MODULE) is not None
    except ImportError:  # the provider package itself is missing
        kpo = False
    if not kpo:
        return [Check("kpo_backstop", "ok", "no KubernetesPodOperator here: every pod is built by the scheduler")]
    detail = (
        "the KubernetesPodOperator is installed: its pods are judged inside the task's own process, where DAG "
        "code can bypass any in-process hook"
    )
    fix = (
        "label the namespaces those pods run in with pod-security.kubernetes.io/enforce (restricted or baseline) "
        "as the backstop; see docs/threat-model.md"
    )
    return [Check("kpo_backstop", "warn", detail, fix)]


#: Checks of valid settings that ask no OPA.
CONFIG_CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (check_mode, check_fail_mode, check_kpo_backstop)


# -- asking OPA ---------------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What the OPA checks share: the settings, and what earlier checks learnt."""

    settings: Settings
    local: bool
    endpoint: OpaEndpoint = field(init=False)
    timeout: float = field(init=False)
    admin: Any = None  # opa_client.OpaClient, with the configured token
    payload: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)  # the decision request's answer
    decision: Decision | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.endpoint = opa_endpoint(self.settings)
        self.timeout = max(self.settings.timeout, 5.0)

    @property
    def hostname(self) -> str | None:
        return urlsplit(self.settings.url).hostname


def check_credentials(probe: Probe) -> list[Check]:
    """The token the management client sends (``token_file`` read now): unreadable stops the run."""
    try:
        probe.admin = admin_client(probe.endpoint, timeout=probe.timeout)
    except OpaUnavailable as exc:
        fix = "token_file must be readable by Airflow's user and hold the token on one line"
        raise StopChecks(Check("auth", "fail", exc.reason, fix)) from None
    return []


def check_reachable(probe: Probe) -> list[Check]:
    url = probe.settings.url
    if probe.admin.check_health(diagnostic_url=health_url(probe.endpoint)):
        return [Check("reachable", "ok", f"{url} answers GET /health")]
    try:  # why not: the management client's own errors say whether anything answers at all
        probe.admin.get_config()
    except requests.exceptions.SSLError as exc:
        fix = "set ca_bundle to the CA that signed OPA's certificate (and client_cert/client_key if OPA requires mTLS)"
        raise StopChecks(Check("reachable", "fail", f"TLS handshake with {url} failed: {exc}", fix)) from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        return [_answered(url, status)]
    except requests.RequestException as exc:
        fix = "start OPA beside Airflow (opa run --server --addr 127.0.0.1:8181 policies/)"
        fix += " or correct [opa_mutation] url"
        raise StopChecks(Check("reachable", "fail", f"no answer from {url}: {type(exc).__name__}", fix)) from None
    return [Check("reachable", "fail", f"GET {url}/health: OPA answers but is not healthy", "read OPA's log")]


def _answered(url: str, status: int) -> Check:
    """OPA answered GET /health and GET /v1/config, neither with 200."""
    if status in (401, 403):
        return Check("reachable", "ok", f"{url} answers (GET /health: HTTP {status})")
    if status == 404:
        fix = "correct [opa_mutation] url (scheme, host, port and any path prefix of a proxy in front of OPA)"
        return Check("reachable", "fail", f"GET {url}/health: HTTP 404: no OPA at this URL", fix)
    return Check("reachable", "fail", f"GET {url}/health: HTTP {status}", "OPA is not healthy: read its log")


def check_tls(probe: Probe) -> list[Check]:
    settings = probe.settings
    if probe.local:
        return [Check("tls", "skip", "a local OPA on loopback started by this command")]
    if probe.endpoint.https:
        verified = f"verified with {settings.ca_bundle}" if settings.ca_bundle else "verified with the system CAs"
        mtls = ", client certificate sent" if settings.client_cert else ""
        return [Check("tls", "ok", f"HTTPS, server certificate {verified}{mtls}")]
    if _loopback(probe.hostname):
        return [Check("tls", "ok", "plain HTTP on loopback (an OPA sidecar)")]
    detail = f"plain HTTP to {probe.hostname}: pods and decisions cross the network unencrypted"
    fix = "serve OPA with --tls-cert-file/--tls-private-key-file, use an https:// url and set ca_bundle"
    return [Check("tls", "warn", detail, fix)]


def check_decision_request(probe: Probe) -> list[Check]:
    """The decision for the sample pod, with provenance, through the hook's own client."""
    client = DecisionClient(dataclasses.replace(probe.settings, breaker_threshold=1_000_000))
    request = {"uid": str(uuid.uuid4()), "version": __version__, "mode": "dry-run"}
    probe.payload = {"pod": SAMPLE_POD, "airflow": SAMPLE_AIRFLOW, "request": request}
    try:
        response = client.query(probe.payload, params="provenance=true")
    except OpaUnavailable as exc:
        if exc.status in (401, 403):
            detail = f"OPA refused the decision request: HTTP {exc.status}"
            fix = (
                "set token or token_file to a token OPA's system.authz policy accepts; with the shipped "
                f"deploy/opa/authz.rego, add {probe.settings.decision_path} to its decision_paths"
            )
            raise StopChecks(Check("auth", "fail", detail, fix)) from None
        fix = "read OPA's log; a policy evaluation error names the rule"
        raise StopChecks(Check("decision", "fail", f"the decision request failed: {exc.reason}", fix)) from None
    finally:
        client.close()
    probe.body = response.body if isinstance(response.body, dict) else {}
    provenance = probe.body.get("provenance")
    probe.facts["opa_version"] = provenance.get("version") if isinstance(provenance, dict) else None
    return []


def check_auth(probe: Probe) -> list[Check]:
    settings = probe.settings
    if settings.token or settings.token_file:
        return [Check("auth", "ok", "the bearer token is accepted"), *_anonymous_answered(probe)]
    if probe.local:
        return []
    if _loopback(probe.hostname):
        return [Check("auth", "ok", "no token configured (loopback sidecar)")]
    fix = "set token_file and run OPA with --authentication=token --authorization=basic"
    return [Check("auth", "warn", "no token configured", fix)]


def _anonymous_answered(probe: Probe) -> list[Check]:
    """A token is configured: does OPA answer the decision without one too?"""
    with admin_client(probe.endpoint, timeout=probe.timeout, authenticated=False) as anonymous:
        try:
            anonymous.query_rule(probe.payload, probe.settings.decision_path)
        except requests.RequestException:
            return []
    fix = "run OPA with --authentication=token --authorization=basic and a system.authz policy"
    return [Check("auth", "warn", "OPA also answers without a token", fix)]


#: Where doctor's write probe goes: outside the bundle's roots (airflow/pod), read by no policy.
WRITE_PROBE = "airflow_opa_mutation_doctor_probe"
WRITES_FIX = (
    "start OPA with --authorization=basic and deploy/opa/authz.rego loaded from disk (as deploy/kubernetes/"
    "opa-sidecar.yaml and docker-compose.yml do): task code on the same host or pod must not replace the "
    "policies or the decision-log mask"
)


def check_writes(probe: Probe) -> list[Check]:
    """Whether OPA accepts a write (``PUT /v1/data/<WRITE_PROBE>``, with the hook's credentials): then anyone
    who can reach it as the hook does can replace policies and the decision-log mask. Deleted at once when
    it was accepted. Not for the command's own local OPA (``--policies``)."""
    if probe.local:
        return [Check("writes", "skip", "a local OPA on loopback started by this command")]
    url = f"{probe.settings.url}/v1/data/{WRITE_PROBE}"
    verify, cert = probe.endpoint.requests_tls()
    with requests.Session() as session:
        session.trust_env = False  # like the hook: no proxy from the environment
        session.headers.update(probe.endpoint.authorization())
        session.verify, session.cert = verify, cert
        try:
            answer = session.put(url, json={"written_by": "airflow-opa-mutation doctor"}, timeout=probe.timeout)
            if answer.ok:
                session.delete(url, timeout=probe.timeout)
        except requests.RequestException as exc:
            return [Check("writes", "warn", f"PUT {url}: {type(exc).__name__}: could not tell", WRITES_FIX)]
    if answer.ok:
        detail = f"OPA accepts writes (PUT /v1/data/{WRITE_PROBE}: HTTP {answer.status_code}; deleted again)"
        return [Check("writes", "fail", detail, WRITES_FIX)]
    if answer.status_code in (401, 403):
        return [Check("writes", "ok", f"OPA refuses writes (PUT /v1/data/...: HTTP {answer.status_code})")]
    detail = f"PUT /v1/data/{WRITE_PROBE} answered HTTP {answer.status_code}: not refused by authorization"
    return [Check("writes", "warn", detail, WRITES_FIX)]


_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(\S*)")


def older_than_minimum(version: str, minimum: str = MIN_OPA_VERSION) -> bool | None:
    """Whether OPA ``version`` is older than ``minimum``; ``None`` when it is not ``X.Y.Z[suffix]``. A
    pre-release (``1.21.3-rc1``) is older than its release; a development build of a later one
    (``1.22.0-dev``) is not older than an earlier release."""

    def key(text: str) -> tuple[int, int, int, int] | None:
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            return None
        major, minor, patch, suffix = match.groups()
        return int(major), int(minor), int(patch), 0 if suffix else 1

    found, wanted = key(version), key(minimum)
    if found is None or wanted is None:
        return None
    return found < wanted


def check_opa_version(probe: Probe) -> list[Check]:
    version = probe.facts.get("opa_version")
    if not isinstance(version, str):
        return [Check("opa version", "warn", "OPA did not report its version (?provenance=true)")]
    old = older_than_minimum(version)
    if old is None:
        return [Check("opa version", "warn", f"OPA reports version {version!r}: not X.Y.Z, cannot compare")]
    if old:
        detail = (
            f"OPA {version} is older than {MIN_OPA_VERSION}: with a bundle signing block without keyid "
            "(deploy/opa/config.yaml) it accepts unsigned bundles (GHSA-g2pf-6v5v-qcc8)"
        )
        if version.lstrip("v").split(".")[0] == "0":
            detail += "; and the library is Rego v1"
        fix = f"upgrade OPA to {OPA_VERSION} (docker-compose.yml and deploy/kubernetes/ pin it)"
        return [Check("opa version", "fail", detail, fix)]
    if version != OPA_VERSION:
        fix = f"run OPA {OPA_VERSION} (docker-compose.yml pins it)"
        return [Check("opa version", "warn", f"OPA {version}; this release is tested with {OPA_VERSION}", fix)]
    return [Check("opa version", "ok", f"OPA {version} (the pinned version)")]


def check_decision(probe: Probe) -> list[Check]:
    path = probe.settings.decision_path
    try:
        decision = parse_decision(probe.body, decision_path=path)
    except OpaMutationError as exc:
        fix = "load the policy library into OPA (opa run --server policies/) or correct [opa_mutation] decision_path"
        return [Check("decision", "fail", f"{path}: {exc.reason}", fix)]
    probe.decision = decision
    probe.facts["decision"] = _decision_facts(decision)
    detail = (
        f"data.{path.replace('/', '.')} is defined for a sample worker pod: {len(decision.patch)} op(s), "
        f"{len(decision.deny)} deny, {len(decision.warn)} warn"
    )
    return [Check("decision", "ok", detail)]


def _decision_facts(decision: Decision) -> dict[str, Any]:
    return {
        "ops": len(decision.patch),
        "deny": len(decision.deny),
        "warn": len(decision.warn),
        "policies": list(decision.policies),
    }


def check_policy_configuration(probe: Probe) -> list[Check]:
    """The policy configuration's errors (every decision carries them: a fail each, naming the key),
    advisories (exemptions wider than they look: a warning each, when this OPA serves them), and the
    exemptions that have expired (a fail each) or end within 14 days (a warning each)."""
    if probe.decision is None:
        return []
    errors = config_errors(probe.decision)
    checks = [Check("policy configuration", "fail", error, ERROR_FIX) for error in errors]
    if not errors:
        checks.append(Check("policy configuration", "ok", "the decision reports no configuration error"))
    advisories = fetch_advisories(probe.admin)
    if advisories is None:
        detail = "this OPA does not serve the library's advisories (data.airflow.pod.lib.config.advisories)"
        checks.append(Check("exemptions", "skip", detail))
    else:
        checks += [Check("exemptions", "warn", advisory, ADVISORY_FIX) for advisory in advisories]
    # Expired exemptions match no pod any more (a fail: the configuration no longer says what it
    # does); ones ending within 14 days are a warning. None listed when this OPA cannot say.
    expired, expiring = expiry_split(fetch_expiry(probe.admin) or [])
    checks += [Check("exemption expiry", "fail", message, EXPIRY_FIX) for message in expired]
    checks += [Check("exemption expiry", "warn", message, EXPIRY_FIX) for message in expiring]
    return checks


def check_bundles(probe: Probe) -> list[Check]:
    if probe.admin.check_health(query={"bundles": "true"}, diagnostic_url=health_url(probe.endpoint)):
        return [Check("bundles", "ok", "every configured bundle is activated (or none is configured)")]
    detail = "GET /health?bundles=true did not answer 200: a bundle is not activated yet"
    return [
        Check(
            "bundles", "fail", detail, "check OPA's log for the bundle service's errors (URL, credentials, signature)"
        )
    ]


#: The checks against OPA, in order. Each returns its findings; :class:`StopChecks` ends the run.
OPA_CHECKS: tuple[Callable[[Probe], list[Check]], ...] = (
    check_credentials,
    check_reachable,
    check_tls,
    check_decision_request,
    check_auth,
    check_writes,
    check_opa_version,
    check_decision,
    check_policy_configuration,
    check_bundles,
)


def run_checks(settings: Settings, *, local: bool) -> tuple[list[Check], dict[str, Any]]:
    """The checklist against the OPA ``settings`` names; also returns facts (version, decision)."""
    probe = Probe(settings, local)
    checks: list[Check] = []
    try:
        for check in OPA_CHECKS:
            checks.extend(check(probe))
    except StopChecks as stop:
        checks.append(stop.check)
    finally:
        if probe.admin is not None:
            probe.admin.close_connection()
    return checks, probe.facts
