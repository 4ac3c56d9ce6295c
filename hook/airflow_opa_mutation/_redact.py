"""What the dry-run diff must not show: the credentials a pod is known to carry.

The diff goes to the log, and a KubernetesPodOperator task's log is readable by anyone who can view the
DAG. Every KubernetesExecutor worker pod carries Airflow 3's workload JSON after ``--json-string``, with
the task's Execution API token in it. Redacted, in every container kind:

- ``env`` and ``envFrom``: the whole list becomes ``<redacted: N entries[, changed]>``;
- the value of a secret flag in ``command``/``args`` and in exec probes and hooks (the next argument, or
  what follows ``=`` or a space in the same one, also inside a shell line);
- every header value of HTTP probes and hooks;
- annotation values whose key looks secret, or that hold a bearer or basic credential.

The same places and rules as the decision-log mask (``deploy/opa/mask.rego``): ``SECRET_WORDS`` is its
``secret_words``, and ``tests/test_secret_redaction.py`` runs one table of cases through both.
"""

from __future__ import annotations

import re
from typing import Any

#: A flag or annotation key is secret when its name contains one of these words, in any case, with "_"
#: or "-" inside it. The same list, in the same order, as ``secret_words`` in deploy/opa/mask.rego.
SECRET_WORDS = (
    "json-string",  # Airflow 3's workload JSON: the task's Execution API token
    "password",
    "passwd",
    "secret",
    "token",
    "api-key",
    "apikey",
    "auth",
    "credential",
    "private-key",
    "access-key",
    "conn-uri",  # airflow connections add --conn-uri, --conn-extra, --conn-json
    "conn-extra",
    "conn-json",
    "dsn",
)

REDACTED = "<redacted>"

_CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")

# Go's (RE2) \s has no \v and Python's has Unicode spaces: the mask and this module name the same six.
_SPACE = "\t\n\v\f\r "
_SEPARATOR = re.compile(f"[={_SPACE}]")
_WORDS = "|".join(word.replace("-", "[-_]") for word in SECRET_WORDS)
#: mask.rego's secret_word and secret_key.
_SECRET_WORD = re.compile(f"(?i){_WORDS}")
_SECRET_KEY = re.compile(f"(?i){_WORDS}|last-applied-configuration")
#: A secret flag after a space, "=" or spaces, and its value: a quoted string or a word (mask.rego's
#: inline_flag).
_INLINE = re.compile(
    rf"(?i)([{_SPACE}])(-{{1,2}}[a-z0-9_.-]*(?:{_WORDS})[a-z0-9_.-]*)(=|[{_SPACE}]+)"
    rf"(\"[^\"]*\"|'[^']*'|[^{_SPACE}]+)"
)
_BEARER = re.compile(r"(?i)^\s*(authorization:\s*)?(bearer|basic)\s+\S")


def secret_name(name: str) -> bool:
    return _SECRET_WORD.search(name) is not None


def _flag_alone(arg: Any) -> bool:
    return isinstance(arg, str) and arg.startswith("-") and not _SEPARATOR.search(arg) and secret_name(arg)


def _masked_arg(args: list[Any], k: int) -> Any:
    """The argument to show for ``args[k]``; the argument itself when nothing in it is secret."""
    if k > 0 and _flag_alone(args[k - 1]):
        return REDACTED
    arg = args[k]
    if not isinstance(arg, str):
        return arg
    found = _SEPARATOR.search(arg)
    if arg.startswith("-") and found and secret_name(arg[: found.start()]):
        return arg[: found.end()] + REDACTED
    return _INLINE.sub(rf"\g<1>\g<2>\g<3>{REDACTED}", arg)


def _redact_program(program: dict[str, Any]) -> dict[str, Any]:
    """``command`` then ``args`` as one vector, the way Kubernetes runs them."""
    command, args = program.get("command"), program.get("args")
    command = command if isinstance(command, list) else []
    args = args if isinstance(args, list) else []
    vector = command + args
    masked = [_masked_arg(vector, k) for k in range(len(vector))]
    if masked == vector:
        return program
    program = dict(program)
    if command:
        program["command"] = masked[: len(command)]
    if args:
        program["args"] = masked[len(command) :]
    return program


def _redact_headers(handler: Any) -> Any:
    """An HTTP probe or hook with every header value redacted."""
    http = handler.get("httpGet") if isinstance(handler, dict) else None
    headers = http.get("httpHeaders") if isinstance(http, dict) else None
    if not isinstance(handler, dict) or not isinstance(http, dict) or not isinstance(headers, list):
        return handler
    redacted = [{**h, "value": REDACTED} if isinstance(h, dict) and "value" in h else h for h in headers]
    return {**handler, "httpGet": {**http, "httpHeaders": redacted}}


def _redact_handler(handler: Any) -> Any:
    """A probe or lifecycle handler: its exec command and its HTTP headers."""
    if not isinstance(handler, dict):
        return handler
    handler = _redact_headers(handler)
    if isinstance(handler.get("exec"), dict):
        handler = {**handler, "exec": _redact_program(handler["exec"])}
    return handler


def _redact_container(container: dict[str, Any], twin: Any) -> dict[str, Any]:
    container = _redact_program(container)
    container = dict(container)
    for key in ("env", "envFrom"):
        if key in container:
            value = container[key]
            count = len(value) if isinstance(value, list) else 1
            same = isinstance(twin, dict) and twin.get(key) == value
            container[key] = f"<redacted: {count} entries{'' if same else ', changed'}>"
    for probe in _PROBES:
        if probe in container:
            container[probe] = _redact_handler(container[probe])
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        container["lifecycle"] = {k: _redact_handler(v) if k in _HOOKS else v for k, v in lifecycle.items()}
    return container


def _credential(key: str, value: Any) -> bool:
    """A secret word in the key, kubectl's copy of the whole object, or a bearer or basic credential."""
    if _SECRET_KEY.search(key):
        return True
    return isinstance(value, str) and _BEARER.match(value) is not None


def redact(doc: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """A copy of pod ``doc`` with its credentials replaced by placeholders (``doc`` is left as it is).

    ``other`` is the same pod on the diff's other side: an env list that differs from its twin there is
    marked ``changed``.
    """
    result = dict(doc)
    metadata = doc.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(metadata, dict) and isinstance(annotations, dict):
        masked = {k: REDACTED if _credential(k, v) else v for k, v in annotations.items()}
        result["metadata"] = {**metadata, "annotations": masked}
    spec, other_spec = doc.get("spec"), other.get("spec")
    if not isinstance(spec, dict):
        return result
    spec = dict(spec)
    for kind in _CONTAINER_KINDS:
        items = spec.get(kind)
        if not isinstance(items, list):
            continue
        others = other_spec.get(kind) if isinstance(other_spec, dict) else None
        spec[kind] = [
            _redact_container(item, others[i] if isinstance(others, list) and i < len(others) else {})
            if isinstance(item, dict)
            else item
            for i, item in enumerate(items)
        ]
    result["spec"] = spec
    return result


#: A JSON Web Token (the Execution API's task tokens are JWTs): three base64url parts, the first ``eyJ``.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: A bearer or basic credential anywhere in a message, up to a space, quote or list separator.
_BEARER_ANYWHERE = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"';,]+")


def redact_text(text: str) -> str:
    """A policy message with what it may quote of the pod's credentials replaced by ``<redacted>``: the
    value of a secret flag (the rule the pod's ``command``/``args`` get), a bearer or basic credential,
    and anything shaped like a JSON Web Token."""
    text = _INLINE.sub(rf"\g<1>\g<2>\g<3>{REDACTED}", " " + text)[1:]
    text = _BEARER_ANYWHERE.sub(rf"\g<1> {REDACTED}", text)
    return _JWT.sub(REDACTED, text)
