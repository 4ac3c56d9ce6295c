"""The policy library's verdict on its own configuration (``policies/lib/config.rego``), for ``verify``,
``doctor`` and ``bundle build``.

- **Errors** (``errors``: an unknown key, a value of the wrong type, an invalid exemption) reach every
  decision as ``framework`` warnings starting with :data:`ERROR_PREFIX`: read from a decision, they need
  nothing but the decision endpoint (an OPA's authorization policy may allow no other). They fail the
  three commands.
- **Advisories** (``advisories``: an ``exempt_images`` entry not pinned by digest, a namespace glob in a
  global exemption) are valid configuration that grants more than it may seem to. Decisions do not carry
  them; they are read from :data:`ADVISORIES_PATH` and shown as warnings.
- **Expiry** (``expiry``, by OPA's clock: an exemption whose ``expires`` has passed, or ends within 14
  days) is read from :data:`EXPIRY_PATH`: an expired exemption fails ``verify`` and ``doctor`` (it matches
  no pod any more: delete it, or renew it on purpose), one ending soon is a warning; ``bundle build``
  warns about both and refuses expired ones with ``--strict``.
"""

from __future__ import annotations

from typing import Any

import requests
import yaml

from ..decision import Decision

#: How a configuration error starts in a decision's warn list (policy ``framework``).
ERROR_PREFIX = "configuration error: "
FRAMEWORK = "framework"
#: Where the library serves its advisories (a set: JSON array of strings).
ADVISORIES_PATH = "airflow/pod/lib/config/advisories"
#: The same, as an ``opa eval`` query.
ADVISORIES_QUERY = "data." + ADVISORIES_PATH.replace("/", ".")
ERRORS_QUERY = "data.airflow.pod.lib.config.errors"
#: Where the library serves the exemptions that have ended or end soon (a set of objects).
EXPIRY_PATH = "airflow/pod/lib/config/expiry"
EXPIRY_QUERY = "data." + EXPIRY_PATH.replace("/", ".")

ERROR_FIX = (
    "correct the key in the policy configuration (data.airflow.pod.config: your configuration file or bundle); "
    "each policy's README lists its parameters, its `schema` their types (policies/README.md, Configuration errors)"
)
ADVISORY_FIX = (
    "pin each exempt_images entry to one image by digest (registry.example.com/team/tool@sha256:<64 hex>), and "
    "exempt namespaces by exact name only where RBAC keeps DAG authors' pods out of them (docs/threat-model.md)"
)

EXPIRY_FIX = (
    "delete the exemption if it is no longer needed (`airflow-opa-mutation exemptions report` shows whether it "
    "still lets pods through), or renew its expires: on purpose, with its owner (policies/README.md, Exemptions)"
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without its timestamp type: ``expires: 2027-01-31`` stays the string it is
    for OPA's own YAML loader, instead of a ``date`` that JSON cannot carry."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """YAML as OPA reads it (dates and times stay strings); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe


def config_errors(decision: Decision) -> list[str]:
    """The configuration errors a decision carries (the framework's warnings about the configuration)."""
    return [m.msg for m in decision.warn if m.policy == FRAMEWORK and m.msg.startswith(ERROR_PREFIX)]


def fetch_advisories(admin: Any) -> list[str] | None:
    """The library's advisories from a running OPA (an ``opa_client.OpaClient``); ``None`` when it cannot
    say (refused, unreachable, or a library without them)."""
    try:
        answer = admin.query_rule({}, ADVISORIES_PATH)
    except (requests.RequestException, ValueError):
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, list):
        return None
    return sorted(str(advisory) for advisory in result)


def fetch_expiry(admin: Any) -> list[dict[str, Any]] | None:
    """The library's expired and expiring exemptions from a running OPA; ``None`` when it cannot say."""
    try:
        answer = admin.query_rule({}, EXPIRY_PATH)
    except (requests.RequestException, ValueError):
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, list):
        return None
    return sorted((e for e in result if isinstance(e, dict)), key=lambda e: str(e.get("exemption")))


def expiry_message(entry: dict[str, Any]) -> str:
    """One line about an expired or expiring exemption (an entry of ``expiry``)."""
    key, expires, ends = entry.get("exemption"), entry.get("expires"), entry.get("ends")
    if entry.get("state") == "expired":
        return f"exemption {key} expired: expires {expires}, so it has matched no pod since {ends}"
    return f"exemption {key} ends within 14 days: expires {expires}, so it matches no pod from {ends}"


def expiry_split(entries: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(expired, expiring) as messages."""
    expired = [expiry_message(e) for e in entries if e.get("state") == "expired"]
    expiring = [expiry_message(e) for e in entries if e.get("state") != "expired"]
    return expired, expiring


__all__ = [
    "ADVISORIES_PATH",
    "ADVISORIES_QUERY",
    "ADVISORY_FIX",
    "ERRORS_QUERY",
    "ERROR_FIX",
    "ERROR_PREFIX",
    "EXPIRY_FIX",
    "EXPIRY_PATH",
    "EXPIRY_QUERY",
    "config_errors",
    "expiry_message",
    "expiry_split",
    "fetch_advisories",
    "fetch_expiry",
    "load_yaml",
]
