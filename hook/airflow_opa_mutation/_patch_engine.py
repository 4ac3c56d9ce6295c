"""Applies a decision's RFC 6902 patch to the pod document: all of it, safely, or none of it.

The patch runs on a JSON document the hook built for this call (never on the caller's ``V1Pod``), one op
at a time so a failure names its op. Ops that touch Airflow's bookkeeping (pod name and namespace, the
labels Airflow tracks pods by, the ``base`` container) are checked right after they run
(:func:`patch`). The result must decode into a ``V1Pod`` that encodes back to the same document
(:func:`to_pod`); only then does the caller swap it into the original object. The two are separate
steps so the hook can add its audit annotation in between and still decode the pod once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jsonpatch
import jsonpointer

from . import _json, _pod_codec
from .decision import PatchOp
from .errors import PatchRejected, PodRef

BASE_CONTAINER = "base"
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Protected:
    """What a patch may not change: the values the input pod had for Airflow's bookkeeping fields."""

    name: str | None
    namespace: str | None
    labels: tuple[tuple[str, str], ...]
    has_base: bool

    @classmethod
    def of(cls, doc: dict[str, Any], label_keys: Sequence[str]) -> Protected:
        metadata = _object(doc.get("metadata"))
        labels = _object(metadata.get("labels"))
        return cls(
            name=metadata.get("name"),
            namespace=metadata.get("namespace"),
            labels=tuple((key, labels[key]) for key in label_keys if key in labels),
            has_base=_has_base(doc),
        )

    def violation(self, doc: Any) -> str | None:
        """What a patched document broke, or ``None``. Only values the input had are protected."""
        if not isinstance(doc, dict):
            return "the pod document is no longer an object"
        metadata = _object(doc.get("metadata"))
        for field, value in (("name", self.name), ("namespace", self.namespace)):
            if value is not None and metadata.get(field) != value:
                return f"metadata.{field} is protected (Airflow tracks its pods by it)"
        labels = _object(metadata.get("labels"))
        for key, value in self.labels:
            if labels.get(key) != value:
                return f"label {key!r} is protected (Airflow tracks its pods by it)"
        if self.has_base and not _has_base(doc):
            return f"the container named {BASE_CONTAINER!r} is protected (Airflow runs the task in it)"
        return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _has_base(doc: dict[str, Any]) -> bool:
    spec = doc.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return False
    return any(isinstance(c, dict) and c.get("name") == BASE_CONTAINER for c in containers)


def _within(pointer: str, prefix: str) -> bool:
    return pointer == prefix or pointer.startswith(prefix + "/")


def _value_problem(value: Any) -> str | None:
    """Why an op's value cannot go into a pod: nested too deep, or holding ``null``; one walk for both."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return f"value nested deeper than {_MAX_DEPTH} levels"
        if item is None:
            # The classic models keep a null map value ({"labels": {"x": null}}) where the pydantic ones
            # refuse it; neither is a pod Kubernetes would store as sent. Refused alike on both.
            return "null is not a value Kubernetes keeps; remove the field instead"
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def patch(
    doc: dict[str, Any],
    ops: Sequence[PatchOp],
    *,
    protected_labels: Sequence[str],
    max_ops: int,
    pod: PodRef | None = None,
    decision_path: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Apply ``ops`` to a copy of ``doc``: the patched document and the subtrees the patch wrote in.

    ``doc`` is not touched. Raises :class:`PatchRejected` naming the op, its path and its policy.
    """
    reject = _rejecter(pod, decision_path)
    if len(ops) > max_ops:
        raise reject(f"{len(ops)} ops exceed max_patch_ops = {max_ops}")
    result = _run(_json.copy(doc), ops, reject)
    protected = Protected.of(doc, protected_labels)
    if protected.violation(result) is not None:
        # Rare: replay on a fresh copy to name the op that broke it (the result decides, not the path).
        replay: Any = _json.copy(doc)
        for op in ops:
            replay = _run(replay, [op], reject)
            problem = protected.violation(replay)
            if problem is not None:
                raise reject(problem, op)
    if not isinstance(result, dict):
        raise reject(f"the patched pod is not a JSON object but {type(result).__name__}")
    return result, changed_roots(ops)


def to_pod(
    result: dict[str, Any],
    ops: Sequence[PatchOp],
    roots: Sequence[str],
    *,
    pod: PodRef | None = None,
    decision_path: str | None = None,
) -> Any:
    """The ``V1Pod`` of a patched document, checking only the subtrees in ``roots`` for a round trip
    (the rest came from a valid pod). A bad value is blamed on the last of ``ops`` that wrote there."""
    try:
        return _pod_codec.decode(result, changed=roots)
    except _pod_codec.DecodeError as exc:
        culprit = _last_op_at(ops, exc.pointer)
        raise _rejecter(pod, decision_path)(f"the patched pod is not a valid V1Pod: {exc}", culprit) from None


def differs(before: dict[str, Any], after: dict[str, Any], roots: Sequence[str]) -> bool:
    """Whether the patch changed anything: only the subtrees it wrote in (``roots``) can differ."""
    if "" in roots:
        return _json.canonical(before) != _json.canonical(after)
    return any(
        _fingerprint(_pod_codec.resolve(before, root)) != _fingerprint(_pod_codec.resolve(after, root))
        for root in roots
    )


def _fingerprint(value: Any) -> bytes:
    return b"absent" if value is _pod_codec.MISSING else _json.canonical(value)


class _Reject(Protocol):
    def __call__(self, message: str, op: PatchOp | None = None) -> PatchRejected: ...


def _rejecter(pod: PodRef | None, decision_path: str | None) -> _Reject:
    """Builds the :class:`PatchRejected` for a problem, naming the op (if any) it is blamed on."""

    def reject(message: str, op: PatchOp | None = None) -> PatchRejected:
        return PatchRejected(
            message,
            op_index=None if op is None else op.index,
            path=None if op is None else op.path,
            policy=None if op is None else op.policy,
            pod=pod,
            decision_path=decision_path,
        )

    return reject


def _run(doc: Any, ops: Sequence[PatchOp], reject: _Reject) -> Any:
    """Apply ops one by one, in place where RFC 6902 allows; a failure names its op."""
    result = doc
    for op in ops:
        if "value" in op.op and op.op.get("op") != "test":
            problem = _value_problem(op.op["value"])
            if problem is not None:
                raise reject(problem, op)
        try:
            operation = jsonpatch.JsonPatch.operations[op.op["op"]](op.op)
            result = operation.apply(result)
        except KeyError as exc:
            if exc.args == ("op",) or op.op.get("op") not in jsonpatch.JsonPatch.operations:
                raise reject(f"unknown or missing 'op': {op.op.get('op')!r}", op) from None
            raise reject(f"op is missing member {exc}", op) from None
        except jsonpatch.JsonPatchTestFailed as exc:
            raise reject(f"test op failed: {exc}", op) from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise reject(f"op does not apply: {exc}", op) from None
        except (TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
            raise reject(f"op does not apply: {type(exc).__name__}: {exc}", op) from None
    return result


def changed_roots(ops: Sequence[PatchOp]) -> list[str]:
    """The subtrees a patch wrote in: each op's path cut to two levels (``/spec/containers``), since an
    array op shifts its siblings; the whole document for a root-level op."""
    roots: set[str] = set()
    for op in ops:
        for pointer in (op.path, op.op.get("from")):
            if not isinstance(pointer, str):
                continue
            parts = pointer.split("/")
            if len(parts) < 3:
                return [""]
            roots.add("/".join(parts[:3]))
    return sorted(roots)


def _last_op_at(ops: Sequence[PatchOp], pointer: str) -> PatchOp | None:
    """The last op that wrote at or above ``pointer``: the one to blame for a bad value there."""
    for op in reversed(ops):
        path = op.path
        if path is not None and op.op.get("op") != "remove" and (path == "" or _within(pointer, path)):
            return op
    return None
