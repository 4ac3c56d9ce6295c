"""Applies a decision's RFC 6902 patch to the pod document: all of it, safely, or none of it.

The patch runs on a JSON document the hook built for this call (never on the caller's ``V1Pod``), one op
at a time so a failure names its op. Ops that touch Airflow's bookkeeping (pod name and namespace, the
labels Airflow tracks pods by, the ``base`` container) are checked right after they run
(:func:`patch`). The result must decode into a ``V1Pod`` that encodes back to the same document
(:func:`to_pod`); only then does the caller swap it into the original object. The two are separate
steps so the hook can add its audit annotation in between and still decode the pod once.
"""

from __future__ import annotations

import functools
import re
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

    ``doc`` is not touched: the result is copy-on-write (:class:`_CopyOnWrite`), sharing every container
    no op wrote in with ``doc``, so neither may be changed in place afterwards (copy what you write into,
    as :func:`._audit.annotate` does). Raises :class:`PatchRejected` naming the op, its path and its policy.
    """
    reject = _rejecter(pod, decision_path)
    if len(ops) > max_ops:
        raise reject(f"{len(ops)} ops exceed max_patch_ops = {max_ops}")
    state = _CopyOnWrite(doc)
    _run(state, ops, reject)
    result = state.doc
    protected = Protected.of(doc, protected_labels)
    if protected.violation(result) is not None:
        # Rare: replay from the start to name the op that broke it (the result decides, not the path).
        replay = _CopyOnWrite(doc)
        for op in ops:
            _run(replay, [op], reject)
            problem = protected.violation(replay.doc)
            if problem is not None:
                raise reject(problem, op)
    if not isinstance(result, dict):
        raise reject(f"the patched pod is not a JSON object but {type(result).__name__}")
    # The root is the caller's to write in (the audit annotation), even after only test ops, or an op
    # that replaced the whole document with the decision's value.
    return state.own_path(()), changed_roots(ops)


def to_pod(
    result: dict[str, Any],
    ops: Sequence[PatchOp],
    roots: Sequence[str],
    *,
    pod: PodRef | None = None,
    decision_path: str | None = None,
    base: tuple[dict[str, Any], Any] | None = None,
) -> Any:
    """The ``V1Pod`` of a patched document, checking only the subtrees in ``roots`` for a round trip
    (the rest came from a valid pod). A bad value is blamed on the last of ``ops`` that wrote there.
    ``base``: the document :func:`patch` started from and the ``V1Pod`` it encodes, whose models the
    result reuses for what the patch did not change (never changing them)."""
    try:
        return _pod_codec.decode(result, changed=roots, base=base)
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


_INDEX = re.compile("0|[1-9][0-9]*")


class _Slow(Exception):
    """A step :func:`_step` leaves to jsonpointer: anything but a present key or index of a dict or list."""


def _step(node: Any, part: str) -> tuple[Any, Any]:
    """The key (an ``int`` for a list) and child one token below ``node``, as jsonpointer would find
    them, for the plain dicts and lists a pod is made of; raises :class:`_Slow` otherwise."""
    kind = type(node)
    if kind is dict:
        if part in node:
            return part, node[part]
    elif kind is list and _INDEX.fullmatch(part):
        index = int(part)
        if index < len(node):
            return index, node[index]
    raise _Slow


class _Pointer(jsonpointer.JsonPointer):
    """jsonpointer's pointer with a fast path for plain dicts and lists (jsonpatch's ``pointer_cls``).

    jsonpointer checks every step against the ``collections.abc`` ABCs, which costs more than the rest of
    an op; a pod is plain JSON. Parsing is cached (a policy library sends the same paths for every pod),
    and anything unusual (a missing member, ``-``, a bad index) takes jsonpointer's own path and errors.
    """

    def __init__(self, pointer: str) -> None:
        self.parts = list(_parse(pointer))
        #: (document, the container its parts but the last lead to), found by :meth:`_CopyOnWrite.apply`
        self.parent: tuple[Any, Any] | None = None

    def to_last(self, doc: Any) -> tuple[Any, Any]:
        parts = self.parts
        if not parts:
            return doc, None
        if self.parent is not None and self.parent[0] is doc:
            node = self.parent[1]
        else:
            node = doc
            try:
                for part in parts[:-1]:
                    node = _step(node, part)[1]
            except _Slow:
                return super().to_last(doc)
        last = parts[-1]
        kind = type(node)
        if kind is dict:
            return node, last
        if kind is list and _INDEX.fullmatch(last):
            return node, int(last)
        return node, jsonpointer.JsonPointer.get_part(node, last)


@functools.lru_cache(maxsize=4096)
def _parse(pointer: str) -> tuple[str, ...]:
    return tuple(jsonpointer.JsonPointer(pointer).parts)


class _Add(jsonpatch.AddOperation):
    """jsonpatch's ``add`` without its deep copy of the value: on a :class:`_CopyOnWrite` document a
    later op copies the value before writing into it, so the decision's value is never changed."""

    def _apply(self, obj: Any, journal: Any) -> Any:
        if "value" not in self.operation:
            return super()._apply(obj, journal)  # type: ignore[misc]  # jsonpatch's own error (not in its stubs)
        return self._add(obj, self.operation["value"], journal)  # type: ignore[attr-defined]


_OPERATIONS = {**jsonpatch.JsonPatch.operations, "add": _Add}


class _CopyOnWrite:
    """A document patched in place without ever writing into the one it started from.

    Every dict and list is shared with the input until an op is about to change it: then it, and each
    container above it, is replaced by a shallow copy the document owns (once; later ops reuse the copy).
    What no op touches stays shared, so a patch of a few ops costs a few small copies, not a copy of the
    pod. ``owned`` keeps the copies alive, so an id in it always names the copy.
    """

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.owned: dict[int, Any] = {}

    def _own(self, value: Any) -> Any:
        kind = type(value)
        if (kind is not dict and kind is not list) or id(value) in self.owned:
            return value
        copy = dict(value) if kind is dict else list(value)
        self.owned[id(copy)] = copy
        return copy

    def own_path(self, parts: Sequence[str]) -> Any:
        """Own the root and every container on the way to ``parts`` (tokens of a pointer, unescaped);
        the container at ``parts``. Stops where the path leaves plain dicts and lists or does not
        resolve: jsonpatch then reports the op's error, or applies it to what it finds (never ours to
        change: only plain dicts and lists come from JSON)."""
        node = self.doc = self._own(self.doc)
        for part in parts:
            try:
                key, child = _step(node, part)
            except _Slow:
                return None
            owned = self._own(child)
            if owned is not child:
                node[key] = owned
            node = owned
        return node

    def own_deep(self, parts: Sequence[str]) -> None:
        """Own everything at and under ``parts``: a ``move`` shifts siblings under its source's parent,
        so the target's path may resolve through any of them once the value has been removed."""
        stack = [self.own_path(parts)]
        while stack:
            node = stack.pop()
            items = node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
            for key, value in list(items):
                owned = self._own(value)
                if owned is not value:
                    node[key] = owned
                    stack.append(owned)

    def apply(self, op: PatchOp) -> None:
        """Apply one op with jsonpatch, in place, after owning every container it may write in."""
        name = op.op["op"]
        operation = _OPERATIONS[name](op.op, pointer_cls=_Pointer)
        if name != "test":
            pointer = operation.pointer
            parent = self.own_path(pointer.parts[:-1])
            if parent is not None and type(pointer) is _Pointer:
                pointer.parent = (self.doc, parent)
            source = op.op.get("from")
            if name == "move" and isinstance(source, str):
                self.own_deep(_Pointer(source).parts[:-1])
        self.doc = operation.apply(self.doc)


def _run(state: _CopyOnWrite, ops: Sequence[PatchOp], reject: _Reject) -> None:
    """Apply ops one by one on the copy-on-write document; a failure names its op."""
    for op in ops:
        if "value" in op.op and op.op.get("op") != "test":
            problem = _value_problem(op.op["value"])
            if problem is not None:
                raise reject(problem, op)
        try:
            state.apply(op)
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


def changed_roots(ops: Sequence[PatchOp]) -> list[str]:
    """The subtrees a patch wrote in: each op's path cut to two levels (``/spec/containers``), since an
    array op shifts its siblings; the whole document for a root-level op."""
    roots: set[str] = set()
    for op in ops:
        for pointer in (op.op.get("path"), op.op.get("from")):
            if type(pointer) is str:
                root = _root(pointer)
                if not root:
                    return [""]
                roots.add(root)
    return sorted(roots)


@functools.lru_cache(maxsize=4096)
def _root(pointer: str) -> str:
    parts = pointer.split("/", 3)
    return "" if len(parts) < 3 else "/".join(parts[:3])


def _last_op_at(ops: Sequence[PatchOp], pointer: str) -> PatchOp | None:
    """The last op that wrote at or above ``pointer``: the one to blame for a bad value there."""
    for op in reversed(ops):
        path = op.path
        if path is not None and op.op.get("op") != "remove" and (path == "" or _within(pointer, path)):
            return op
    return None
