"""The decision contract: what OPA must return, checked before anything acts on it.

A decision is ``{"patch": [...], "deny": [...], "warn": [...], "exemptions": [...]}``, every member
optional. ``patch`` is an RFC 6902 array whose ops may carry a ``"policy"`` member (stripped before
applying); ``deny``/``warn`` are strings or ``{"msg": str, "policy": str}``; ``exemptions`` lists the
exemptions that let the pod past some or all policies, ``{"name": str, "policy"?, "reason"?, "ticket"?,
"expires"?: str}`` (no ``policy``: a global exemption). Anything else is an :class:`InvalidDecision`,
because acting on a half-understood decision is how a pod slips through unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidDecision, Message, PodRef

#: Members of a patch op that RFC 6902 defines; ``policy`` is ours and everything else is ignored.
_RFC6902_MEMBERS = frozenset({"op", "path", "value", "from"})


@dataclass(frozen=True)
class PatchOp:
    """One RFC 6902 operation (without our ``policy`` member) and the policy that asked for it."""

    index: int
    op: dict[str, Any]
    policy: str | None

    @property
    def path(self) -> str | None:
        path = self.op.get("path")
        return path if isinstance(path, str) else None


@dataclass(frozen=True)
class Exemption:
    """An exemption that applied to the pod: ``policy`` is ``None`` for a global one (``exempt.<name>``),
    else the policy it lets the pod past (``policies.<policy>.exempt.<name>``). ``reason``, ``ticket``
    and ``expires`` are what the operator wrote (policies/README.md, Exemptions)."""

    name: str
    policy: str | None = None
    reason: str | None = None
    ticket: str | None = None
    expires: str | None = None

    @property
    def key(self) -> str:
        """Where the exemption is configured, as the library's configuration errors name it."""
        return f"exempt.{self.name}" if self.policy is None else f"policies.{self.policy}.exempt.{self.name}"


@dataclass(frozen=True)
class Decision:
    """OPA's answer for one pod, checked against the contract (``Outcome.decision``).

    ``decision_id`` is OPA's id for it in the decision log (when logging is on); ``provenance`` is what
    ``?provenance=true`` reported (OPA's version, bundle revisions).
    """

    patch: tuple[PatchOp, ...] = ()
    deny: tuple[Message, ...] = ()
    warn: tuple[Message, ...] = ()
    exemptions: tuple[Exemption, ...] = ()
    decision_id: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def policies(self) -> tuple[str, ...]:
        """Policies that contributed ops, in first-seen order."""
        return tuple(dict.fromkeys(op.policy for op in self.patch if op.policy))


def parse_decision(
    response: Any,
    *,
    pod: PodRef | None = None,
    decision_path: str | None = None,
) -> Decision:
    """Turn OPA's response body into a :class:`Decision` or raise :class:`InvalidDecision`."""

    def invalid(message: str) -> InvalidDecision:
        return InvalidDecision(message, pod=pod, decision_path=decision_path)

    if not isinstance(response, dict):
        raise invalid(f"OPA's response is not a JSON object but {type(response).__name__}")
    decision_id = response.get("decision_id")
    provenance = response.get("provenance")
    if "result" not in response:
        raise invalid(
            "the decision is undefined: no rule produced a result at this path "
            "(is the policy loaded, and is the decision_path right?)"
        )
    result = response["result"]
    if not isinstance(result, dict):
        raise invalid(f"the decision must be an object with patch/deny/warn, got {_type(result)}")
    return Decision(
        patch=_parse_patch(result.get("patch", []), invalid),
        deny=_parse_messages("deny", result.get("deny", []), invalid),
        warn=_parse_messages("warn", result.get("warn", []), invalid),
        exemptions=_parse_exemptions(result.get("exemptions", []), invalid),
        decision_id=decision_id if isinstance(decision_id, str) else None,
        provenance=provenance if isinstance(provenance, dict) else {},
    )


def _type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _parse_patch(patch: Any, invalid: Any) -> tuple[PatchOp, ...]:
    if not isinstance(patch, list):
        raise invalid(f"decision member 'patch' must be an array of RFC 6902 ops, got {_type(patch)}")
    ops = []
    for index, raw in enumerate(patch):
        if not isinstance(raw, dict):
            raise invalid(f"patch op #{index} must be an object, got {_type(raw)}")
        policy = raw.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise invalid(f"patch op #{index}: 'policy' must be a string, got {_type(policy)}")
        op = raw.copy()
        op.pop("policy", None)
        if not op.keys() <= _RFC6902_MEMBERS:  # rare: members jsonpatch would ignore anyway
            op = {key: value for key, value in op.items() if key in _RFC6902_MEMBERS}
        ops.append(PatchOp(index=index, op=op, policy=policy))
    return tuple(ops)


def _parse_messages(member: str, messages: Any, invalid: Any) -> tuple[Message, ...]:
    if not isinstance(messages, list):
        raise invalid(f"decision member {member!r} must be an array of messages, got {_type(messages)}")
    parsed = []
    for index, entry in enumerate(messages):
        if isinstance(entry, str):
            parsed.append(Message(entry))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("msg"), str):
            raise invalid(f"{member}[{index}] must be a string or an object with a string 'msg', got {_type(entry)}")
        policy = entry.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise invalid(f"{member}[{index}]: 'policy' must be a string, got {_type(policy)}")
        parsed.append(Message(entry["msg"], policy))
    return tuple(parsed)


_EXEMPTION_TEXT = ("policy", "reason", "ticket", "expires")


def _parse_exemptions(exemptions: Any, invalid: Any) -> tuple[Exemption, ...]:
    if not isinstance(exemptions, list):
        raise invalid(f"decision member 'exemptions' must be an array, got {_type(exemptions)}")
    parsed = []
    for index, entry in enumerate(exemptions):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise invalid(f"exemptions[{index}] must be an object with a string 'name', got {_type(entry)}")
        for member in _EXEMPTION_TEXT:
            value = entry.get(member)
            if value is not None and not isinstance(value, str):
                raise invalid(f"exemptions[{index}]: {member!r} must be a string, got {_type(value)}")
        parsed.append(Exemption(entry["name"], *(entry.get(member) for member in _EXEMPTION_TEXT)))
    return tuple(parsed)
