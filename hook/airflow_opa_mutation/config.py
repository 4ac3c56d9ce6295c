"""The ``[opa_mutation]`` configuration, read the way Airflow reads its own.

Precedence, highest first: the environment variable ``AIRFLOW__OPA_MUTATION__<KEY>``, then airflow.cfg's
``[opa_mutation]`` section (only when Airflow is importable; Airflow is never required), then the
default. Every value is validated once, when the hook is built, so a typo fails at start-up with a
``ConfigError`` naming the key instead of at the first pod.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError

log = logging.getLogger("airflow_opa_mutation")

SECTION = "opa_mutation"
ENV_PREFIX = "AIRFLOW__OPA_MUTATION__"

#: Labels Airflow uses to find and track its pods; a patch may never change or remove them. The policy
#: library's copy is ``k8s.protected_labels`` (policies/lib/k8s.rego); tests/test_protected_labels.py
#: asks a real OPA for it and fails when the two differ.
AIRFLOW_LABELS = (
    "dag_id",
    "task_id",
    "run_id",
    "try_number",
    "map_index",
    "kubernetes_executor",
    "kubernetes_pod_operator",
    "airflow-worker",
    "airflow_version",
    "airflow_kpo_in_cluster",
)

FailMode = Literal["closed", "open"]
#: ``off`` is the kill switch: the hook leaves every pod alone and never asks OPA (``MutationHook.__call__``).
Mode = Literal["enforce", "dry-run", "off"]


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one hook. Build it with :func:`load_settings` or directly in code."""

    url: str = "http://127.0.0.1:8181"
    decision_path: str = "airflow/pod/decision"
    timeout: float = 2.0
    fail_mode: FailMode = "closed"
    mode: Mode = "enforce"
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    protected_labels: tuple[str, ...] = ()
    max_patch_ops: int = 1000
    #: Limits checked before OPA is asked (a pod above one is denied in both fail modes): the pod's
    #: compact UTF-8 JSON (Kubernetes' own request limit), its containers of all three kinds, and its
    #: volumes (each image volume is an image to judge and may be a patch operation).
    max_pod_bytes: int = 1572864
    max_containers: int = 100
    max_volumes: int = 256
    max_response_bytes: int = 8 * 1024 * 1024
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    audit_annotation: bool = True
    provenance: bool = True
    require_bundles: bool = False
    #: Opt-in: the DAG processor evaluates each KubernetesPodOperator task's pod while parsing and turns a
    #: denial into an import error (``_parse_check``). A guardrail for DAG authors, not enforcement.
    parse_time_check: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def all_protected_labels(self) -> tuple[str, ...]:
        return AIRFLOW_LABELS + tuple(lbl for lbl in self.protected_labels if lbl not in AIRFLOW_LABELS)


@dataclass(frozen=True)
class Source:
    """Where one effective value came from: ``env``, ``airflow.cfg`` or ``default``."""

    key: str
    origin: str
    raw: str | None


def _positive_float(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(key, raw, "expected a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ConfigError(key, raw, "expected a positive, finite number of seconds")
    return value


def _positive_int(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(key, raw, "expected a whole number") from None
    if value < 1:
        raise ConfigError(key, raw, "expected a whole number of at least 1")
    return value


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(key, raw, f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _boolean(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, raw, "expected true or false")


# Kubernetes' label-key syntax, as apimachinery's validation.IsQualifiedName checks it: [prefix "/"] name,
# the name at most 63 characters, the prefix a lowercase RFC 1123 subdomain of at most 253 (so 317 in all).
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _label_key_problem(label: str) -> str | None:
    """Why ``label`` is not a Kubernetes label key, or ``None``: a key Kubernetes refuses cannot be on a pod."""
    if label.count("/") > 1:
        return "at most one '/' (prefix/name)"
    prefix, slash, name = label.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "the prefix must be a lowercase DNS subdomain of at most 253 characters"
    if not (len(name) <= 63 and _LABEL_NAME.fullmatch(name)):
        return "the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _label_list(key: str, raw: str) -> tuple[str, ...]:
    labels = tuple(part.strip() for part in raw.split(",") if part.strip())
    for label in labels:
        problem = _label_key_problem(label)
        if problem:
            raise ConfigError(key, raw, f"{label!r} is not a label key: {problem}")
    return labels


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http://host[:port][/prefix] or https://..."
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    return None


def _url(key: str, raw: str) -> str:
    problem = _url_problem(raw.strip())
    if problem:
        raise ConfigError(key, raw, problem)
    return raw.strip().rstrip("/")


def _text(key: str, raw: str) -> str | None:
    return raw.strip() or None


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "url": _url,
    "decision_path": lambda key, raw: raw.strip().strip("/"),
    "timeout": _positive_float,
    "fail_mode": _choice("closed", "open"),
    "mode": _choice("enforce", "dry-run", "off"),
    "token": _text,
    "token_file": _text,
    "ca_bundle": _text,
    "client_cert": _text,
    "client_key": _text,
    "protected_labels": _label_list,
    "max_patch_ops": _positive_int,
    "max_pod_bytes": _positive_int,
    "max_containers": _positive_int,
    "max_volumes": _positive_int,
    "max_response_bytes": _positive_int,
    "breaker_threshold": _positive_int,
    "breaker_cooldown": _positive_float,
    "audit_annotation": _boolean,
    "provenance": _boolean,
    "require_bundles": _boolean,
    "parse_time_check": _boolean,
}

KEYS: tuple[str, ...] = tuple(f.name for f in fields(Settings))
assert set(KEYS) == set(_PARSERS), "every Settings field needs a parser"


def _validate(settings: Settings) -> None:
    problem = _url_problem(settings.url)
    if problem:
        raise ConfigError("url", settings.url, problem)
    parts = urlsplit(settings.url)
    if not 0 < settings.timeout < float("inf"):
        raise ConfigError("timeout", settings.timeout, "expected a positive, finite number of seconds")
    if settings.fail_mode not in ("closed", "open"):
        raise ConfigError("fail_mode", settings.fail_mode, "expected one of closed, open")
    if settings.mode not in ("enforce", "dry-run", "off"):
        raise ConfigError("mode", settings.mode, "expected one of enforce, dry-run, off")
    if not settings.decision_path or any(not seg for seg in settings.decision_path.split("/")):
        raise ConfigError("decision_path", settings.decision_path, "expected a path like airflow/pod/decision")
    _validate_counts(settings)
    if settings.token and settings.token_file:
        raise ConfigError("token_file", settings.token_file, "set either token or token_file, not both")
    for key in ("token_file", "ca_bundle", "client_cert", "client_key"):
        path = getattr(settings, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(key, path, "no such file")
    for label in settings.protected_labels:
        problem = _label_key_problem(label)
        if problem:
            raise ConfigError("protected_labels", label, f"not a label key: {problem}")
    if settings.client_key and not settings.client_cert:
        raise ConfigError("client_key", settings.client_key, "client_key needs client_cert")
    if (settings.ca_bundle or settings.client_cert) and parts.scheme != "https":
        raise ConfigError("url", settings.url, "ca_bundle/client_cert need an https:// url")


def _validate_counts(settings: Settings) -> None:
    for key in (
        "max_patch_ops",
        "max_pod_bytes",
        "max_containers",
        "max_volumes",
        "max_response_bytes",
        "breaker_threshold",
    ):
        value = getattr(settings, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(key, value, "expected a whole number of at least 1")


def _airflow_conf() -> Any | None:
    """Airflow's ``conf`` when Airflow is importable, else ``None`` (the hook runs without Airflow)."""
    try:
        from airflow.configuration import conf
    except ImportError:
        return None
    return conf


def read_raw(environ: Mapping[str, str] | None = None, airflow_conf: Any | None = None) -> dict[str, Source]:
    """The raw value of every key and where it came from, without validating it."""
    env = os.environ if environ is None else environ
    conf = _airflow_conf() if airflow_conf is None else airflow_conf
    sources: dict[str, Source] = {}
    for key in KEYS:
        env_name = ENV_PREFIX + key.upper()
        if env_name in env:
            sources[key] = Source(key, "env", env[env_name])
        elif conf is not None and conf.has_option(SECTION, key):
            sources[key] = Source(key, "airflow.cfg", str(conf.get(SECTION, key)))
        else:
            sources[key] = Source(key, "default", None)
    return sources


def settings_from_raw(sources: Mapping[str, Source]) -> Settings:
    mode = sources.get("mode")
    off = mode is not None and mode.raw is not None and _PARSERS["mode"]("mode", mode.raw) == "off"
    values: dict[str, Any] = {}
    try:
        for key, source in sources.items():
            if source.raw is not None:
                values[key] = _PARSERS[key](key, source.raw)
        return Settings(**values)
    except ConfigError as exc:
        # The kill switch must work when the incident is the configuration itself (an unmounted token
        # file, a bad url): with mode = off nothing else is used, so a bad value elsewhere cannot block it.
        if not off:
            raise
        log.warning("opa_mutation mode=off: ignoring the rest of the configuration, which is invalid: %s", exc)
        return Settings(mode="off")


def load_settings(environ: Mapping[str, str] | None = None, airflow_conf: Any | None = None) -> Settings:
    """Settings from the environment and, when Airflow is importable, airflow.cfg."""
    return settings_from_raw(read_raw(environ, airflow_conf))
