"""The hook's ``Outcome`` as the command line reports it: a verdict, and the JSON of ``--output json``."""

from __future__ import annotations

from typing import Any

from ..errors import Message, OpaMutationError, PodDenied
from ..hook import Outcome


def verdict(outcome: Outcome) -> str:
    if isinstance(outcome.error, PodDenied):
        return "denied"
    if outcome.error is not None:
        return "failed"
    return "mutated" if outcome.changed else "unchanged"


def failing(outcome: Outcome) -> bool:
    return outcome.error is not None


def messages_json(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"policy": m.policy, "msg": m.msg} for m in messages]


def ops_json(outcome: Outcome) -> list[dict[str, Any]]:
    decision = outcome.decision
    if decision is None:
        return []
    return [{"index": op.index, "policy": op.policy, **op.op} for op in decision.patch]


def exemptions_json(outcome: Outcome) -> list[dict[str, Any]]:
    """The exemptions that applied to the pod (``exemptions report`` reads them from a scan)."""
    decision = outcome.decision
    if decision is None:
        return []
    return [
        {"name": e.name, "policy": e.policy, "reason": e.reason, "ticket": e.ticket, "expires": e.expires}
        for e in decision.exemptions
    ]


def error_json(error: OpaMutationError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": type(error).__name__, "message": str(error)}


def outcome_json(outcome: Outcome, *, documents: bool = True) -> dict[str, Any]:
    decision = outcome.decision
    result: dict[str, Any] = {
        "pod": {"namespace": outcome.pod.namespace, "name": outcome.pod.name},
        "airflow": outcome.airflow,
        "request_uid": outcome.request_uid,
        "mode": outcome.mode,
        "verdict": verdict(outcome),
        "changed": outcome.changed,
        "ops": ops_json(outcome),
        "policies": list(decision.policies) if decision else [],
        "deny": messages_json(decision.deny) if decision else [],
        "warn": messages_json(decision.warn) if decision else [],
        "exemptions": exemptions_json(outcome),
        "decision_id": decision.decision_id if decision else None,
        "error": error_json(outcome.error),
        "duration_ms": round(outcome.duration * 1000, 3),
    }
    if documents:
        result["before"] = outcome.before
        result["after"] = outcome.after
    return result
