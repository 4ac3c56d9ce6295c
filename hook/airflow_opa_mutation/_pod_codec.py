"""V1Pod <-> Kubernetes JSON, for both generations of the kubernetes client's models.

Classic models (kubernetes <= 36) are generated classes with ``openapi_types``/``attribute_map``; their
deserializer silently drops unknown fields and coerces scalars (``bool("false")`` is ``True``). Pydantic
models (kubernetes >= 37) validate, but coerce in lax mode too. Neither is a safe judge of a patched
document on its own, so :func:`decode` always re-encodes the model it built and insists on getting the
exact document back: a field that was dropped, renamed or coerced is reported with its JSON pointer.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, cast

from kubernetes import client as k8s

from . import _json

JSON = Any  # a JSON value: dict / list / str / int / float / bool / None

PYDANTIC_MODELS: bool = hasattr(k8s.V1Pod, "model_validate")


class DecodeError(ValueError):
    """The document is not a pod the installed kubernetes client can represent exactly."""

    def __init__(self, message: str, pointer: str = "") -> None:
        self.pointer = pointer
        super().__init__(message)


# ---------------------------------------------------------------------------------------------- encode


_PLAIN = frozenset({str, int, float, bool, type(None)})
_ENCODE_MAPS: dict[type, tuple[tuple[str, str, str], ...]] = {}


def _encode_map(klass: type) -> tuple[tuple[str, str, str], ...]:
    """(attribute, the private slot its property reads, JSON key) for one classic model class."""
    fields = _ENCODE_MAPS.get(klass)
    if fields is None:
        attribute_map: dict[str, str] = klass.attribute_map  # type: ignore[attr-defined]
        fields = tuple((attr, f"_{attr}", attribute_map[attr]) for attr in klass.openapi_types)  # type: ignore[attr-defined]
        _ENCODE_MAPS[klass] = fields
    return fields


def _encode_classic(obj: Any) -> JSON:
    """``ApiClient.sanitize_for_serialization`` without its per-call generic dispatch overhead.

    A classic model's properties only return a private slot (``name`` -> ``_name``): read the slots
    from ``__dict__`` (falling back to the property), through a per-class map built once.
    """
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is list or kind is tuple:
        return [_encode_classic(item) for item in obj]
    if kind is dict:
        return {key: _encode_classic(value) for key, value in obj.items()}
    if hasattr(kind, "attribute_map") and hasattr(kind, "openapi_types"):
        slots = obj.__dict__
        out = {}
        for attr, private, key in _encode_map(kind):
            value = slots[private] if private in slots else getattr(obj, attr)
            if value is not None:
                out[key] = _encode_classic(value)
        return out
    if isinstance(obj, (str, int, float, bool)):  # subclasses of the plain types
        return obj
    if isinstance(obj, (list, tuple)):
        return [_encode_classic(item) for item in obj]
    if isinstance(obj, dict):
        return {key: _encode_classic(value) for key, value in obj.items()}
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    raise DecodeError(f"cannot encode a {type(obj).__name__} inside a pod")


def _encode_pydantic(obj: Any) -> JSON:
    if isinstance(obj, k8s.V1Pod):
        return obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    # A pod assembled by hand may hold plain dicts or other models where models belong; the generic
    # sanitizer knows how to walk those.
    return _api_client().sanitize_for_serialization(obj)


def encode(pod: Any) -> dict[str, JSON]:
    """The pod as Kubernetes JSON: camelCase keys, no nulls — what the API server would receive."""
    try:
        doc = _encode_pydantic(pod) if PYDANTIC_MODELS else _encode_classic(pod)
    except DecodeError:
        raise
    except Exception as exc:  # a model with a broken attribute raises anything
        raise DecodeError(f"cannot serialize the pod: {type(exc).__name__}: {exc}") from exc
    if not isinstance(doc, dict):
        raise DecodeError(f"a pod serializes to a JSON object, got {type(doc).__name__}")
    return cast(dict[str, JSON], doc)


# ---------------------------------------------------------------------------------------------- decode

_CLIENT: Any = None


def _api_client() -> Any:
    global _CLIENT  # noqa: PLW0603 - one lazily built client per process, cheap to share read-only
    if _CLIENT is None:
        _CLIENT = k8s.ApiClient()
    return _CLIENT


# Classic models: a strict decoder driven by each class's ``openapi_types``/``attribute_map``, compiled
# once per class. Unlike ``ApiClient.__deserialize`` it never coerces a scalar nor drops a field, and it
# says where the document went wrong.

_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "bool": (bool,),
}
_FIELD_MAPS: dict[type, dict[str, tuple[str, str]]] = {}


def _field_map(klass: type) -> dict[str, tuple[str, str]]:
    """JSON key -> (Python attribute, openapi type) for one classic model class."""
    fields = _FIELD_MAPS.get(klass)
    if fields is None:
        attribute_map: dict[str, str] = getattr(klass, "attribute_map", {})
        openapi_types: dict[str, str] = getattr(klass, "openapi_types", {})
        fields = {attribute_map[attr]: (attr, kind) for attr, kind in openapi_types.items()}
        _FIELD_MAPS[klass] = fields
    return fields


def _decode_classic(data: JSON, kind: str, pointer: str) -> Any:
    if data is None:
        return None
    if kind.startswith("list["):
        if not isinstance(data, list):
            raise DecodeError(f"{pointer}: expected an array, got {_kind(data)}", pointer)
        item = kind[5:-1]
        return [_decode_classic(value, item, f"{pointer}/{index}") for index, value in enumerate(data)]
    if kind.startswith("dict["):
        if not isinstance(data, dict):
            raise DecodeError(f"{pointer}: expected an object, got {_kind(data)}", pointer)
        item = kind[kind.index(",") + 1 : -1].strip()
        return {key: _decode_classic(value, item, f"{pointer}/{_escape(key)}") for key, value in data.items()}
    if kind in _SCALARS or kind in _LEAVES:
        return _decode_leaf(data, kind, pointer)
    return _decode_model(data, kind, pointer)


#: Leaf types besides the scalars: ``object`` (int-or-string and free-form fields) and timestamps.
_LEAVES = frozenset({"object", "datetime", "date"})


def _decode_leaf(data: JSON, kind: str, pointer: str) -> Any:
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        if (isinstance(data, bool) and kind != "bool") or not isinstance(data, scalar):
            raise DecodeError(f"{pointer}: expected a {kind}, got {_kind(data)} {data!r:.60}", pointer)
        return data
    if kind == "object":  # any JSON value
        return data
    if not isinstance(data, str):
        raise DecodeError(f"{pointer}: expected a {kind} string, got {_kind(data)}", pointer)
    return _api_client()._ApiClient__deserialize(data, kind)


def _decode_model(data: JSON, kind: str, pointer: str) -> Any:
    klass = getattr(k8s, kind, None)
    if klass is None:  # pragma: no cover - a type the generated client names but does not define
        raise DecodeError(f"{pointer}: unknown model type {kind}", pointer)
    if not isinstance(data, dict):
        raise DecodeError(f"{pointer}: expected an object ({kind}), got {_kind(data)}", pointer)
    fields = _field_map(klass)
    kwargs = {}
    for key, value in data.items():
        field = fields.get(key)
        sub = f"{pointer}/{_escape(key)}"
        if field is None:
            raise DecodeError(f"{sub}: field unknown to the kubernetes client (a typo, or the wrong place?)", sub)
        kwargs[field[0]] = _decode_classic(value, field[1], sub)
    try:
        return klass(**kwargs, local_vars_configuration=_api_client().configuration)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{pointer or '/'}: {exc}", pointer) from None


def _build_classic(doc: dict[str, JSON]) -> Any:
    return _decode_classic(doc, "V1Pod", "")


def _build_pydantic(doc: dict[str, JSON]) -> Any:
    return k8s.V1Pod.model_validate(doc)


def decode(doc: JSON, *, changed: Iterable[str] | None = None, base: tuple[JSON, Any] | None = None) -> Any:
    """Build a ``V1Pod`` that encodes back to exactly ``doc``, or raise :class:`DecodeError`.

    ``changed`` names the JSON pointers a patch wrote under; only those subtrees are compared after the
    round trip (the rest came from a valid pod and round-trips by construction). ``None`` checks all.
    ``base`` is the document ``doc`` was patched from (copy-on-write: sharing what did not change) and
    the pod it encodes: the models of the parts ``doc`` shares with it are reused (:func:`_rebuild`).
    """
    if not isinstance(doc, dict):
        raise DecodeError(f"a pod must be a JSON object, got {type(doc).__name__}")
    # Pydantic validates a whole pod in C faster than Python can walk to the parts that changed.
    reuse = base is not None and not PYDANTIC_MODELS and type(base[0]) is dict and type(base[1]) is k8s.V1Pod
    try:
        if reuse and base is not None:
            pod = _rebuild(doc, base[0], base[1], k8s.V1Pod, "")
        else:
            pod = _build_pydantic(doc) if PYDANTIC_MODELS else _build_classic(doc)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(*_describe_build_error(exc)) from exc
    roots = [""] if changed is None else list(changed)
    if reuse:
        return pod  # every value decoded anew was checked where it was decoded (_rebuild_classic_field)
    again = encode(pod) if PYDANTIC_MODELS or "" in roots else None  # a pydantic dump is cheap
    for root in roots:
        want = resolve(doc, root)
        got = resolve(again, root) if again is not None else _encode_classic_at(pod, root)
        if want is not MISSING and got is not MISSING and _json.canonical(want) == _json.canonical(got):
            continue  # the common case, decided in C; the walk below only explains a difference
        difference = first_difference(want, got, root)
        if difference is not None:
            pointer, why = difference
            raise DecodeError(f"{pointer or '/'}: {why}", pointer)
    return pod


MISSING: Any = object()


# Rebuilding a patched pod from the pod it was patched from. The patched document is copy-on-write: a
# dict or list it shares with the original document (by identity) is unchanged, and the original
# document was encoded from the original pod, so that part's model is reused as it is. Only the
# containers the patch copied are rebuilt, and only the values it wrote are decoded and checked.


def _rebuild(new: JSON, old: JSON, model: Any, klass: type, pointer: str) -> Any:
    """The model (of ``klass``) of ``new``, reusing ``model`` (whose document is ``old``) where shared."""
    if new is old:
        return model
    if type(new) is not dict or type(old) is not dict or type(model) is not klass:
        return _decode_fresh(new, klass, pointer)
    return _rebuild_classic(new, old, model, klass, pointer)


def _decode_fresh(data: JSON, klass: type, pointer: str) -> Any:
    value = _decode_classic(data, klass.__name__, pointer)
    _check_round_trip(data, value, pointer)
    return value


def _rebuild_classic(new: dict[str, JSON], old: dict[str, JSON], model: Any, klass: type, pointer: str) -> Any:
    """A copy of ``model`` with the fields the patch changed decoded anew (through the model's setters,
    which validate as its constructor does) and fields it removed cleared."""
    fields = _field_map(klass)
    copy: Any = object.__new__(klass)
    copy.__dict__.update(model.__dict__)
    for key, value in new.items():
        before = old.get(key, MISSING)
        if value is before:
            continue
        field = fields.get(key)
        sub = f"{pointer}/{_escape(key)}"
        if field is None:
            raise DecodeError(f"{sub}: field unknown to the kubernetes client (a typo, or the wrong place?)", sub)
        if value is None:
            raise DecodeError(f"{sub}: null is not a value Kubernetes keeps; remove the field instead", sub)
        item = _model_item(field[1])
        if before is not MISSING and item is not None:
            decoded = _rebuild_child(value, before, getattr(model, field[0]), (field[1], item), sub)
        else:
            decoded = _decode_classic(value, field[1], sub)
            _check_round_trip(value, decoded, sub)
        _set(copy, field[0], decoded, sub)
    for key in old:
        if key not in new:
            field = fields[key]
            _set(copy, field[0], None, f"{pointer}/{_escape(key)}")
    return copy


def _set(model: Any, attr: str, value: Any, pointer: str) -> None:
    try:
        setattr(model, attr, value)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{pointer or '/'}: {exc}", pointer) from None


def _rebuild_child(new: JSON, old: JSON, model: Any, kind: tuple[str, type], pointer: str) -> Any:
    """A field's value: a model or a list of models (``kind``: the field's type and the model class)."""
    name, item = kind
    if name.startswith("list[") or name == "list":
        if type(new) is not list or type(old) is not list or type(model) is not list or len(old) != len(model):
            return _decode_list(new, name, pointer)
        # A shared item is reused wherever it moved to; a copied one is rebuilt from the item at its index.
        at = {id(value): index for index, value in enumerate(old)}
        out = []
        for index, value in enumerate(new):
            source = at.get(id(value), index)
            if source < len(old):
                out.append(_rebuild(value, old[source], model[source], item, f"{pointer}/{index}"))
            else:
                out.append(_decode_fresh(value, item, f"{pointer}/{index}"))
        return out
    return _rebuild(new, old, model, item, pointer)


def _decode_list(data: JSON, name: str, pointer: str) -> Any:
    value = _decode_classic(data, name, pointer)
    _check_round_trip(data, value, pointer)
    return value


def _check_round_trip(data: JSON, value: Any, pointer: str) -> None:
    """Insist that a freshly decoded classic value encodes back to exactly ``data``."""
    again = _encode_classic(value)
    if _json.canonical(again) == _json.canonical(data):
        return
    difference = first_difference(data, MISSING if again is None else again, pointer)
    if difference is not None:
        where, why = difference
        raise DecodeError(f"{where or '/'}: {why}", where)


_MODEL_ITEMS: dict[str, type | None] = {}


def _model_item(kind: str) -> type | None:
    """The model class of a classic field type (``V1Container`` or ``list[V1Container]``), else None."""
    if kind not in _MODEL_ITEMS:
        name = kind[5:-1] if kind.startswith("list[") else kind
        found = getattr(k8s, name, None) if name.startswith("V") else None
        _MODEL_ITEMS[kind] = found if isinstance(found, type) and hasattr(found, "openapi_types") else None
    return _MODEL_ITEMS[kind]


def _encode_classic_at(pod: Any, pointer: str) -> JSON:
    """Encode only the part of a classic-model pod at ``pointer`` (a pointer into its JSON)."""
    value = pod
    for token in pointer.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if hasattr(type(value), "openapi_types"):
            field = _field_map(type(value)).get(key)
            value = getattr(value, field[0]) if field is not None else None
        elif isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            value = None
        if value is None:
            return MISSING
    return _encode_classic(value)


def resolve(doc: JSON, pointer: str) -> JSON:
    """The value at an (unescaped-safe) pointer of plain keys, or a sentinel when it is absent."""
    value = doc
    for token in pointer.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


def _describe_build_error(exc: Exception) -> tuple[str, str]:
    """A message and the JSON pointer it is about, from a pydantic ``ValidationError`` or any error."""
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic.ValidationError: name the first offending location
        first = errors()[0]
        pointer = "".join(f"/{_escape(str(part))}" for part in first.get("loc", ()))
        if first.get("type") == "extra_forbidden":
            return f"{pointer}: field unknown to the kubernetes client (a typo, or the wrong place?)", pointer
        return f"{pointer}: {first.get('msg')} (got {first.get('input')!r:.80})", pointer
    return f"not a valid V1Pod: {type(exc).__name__}: {exc}", ""


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _kind(value: JSON) -> str:
    if value is MISSING:
        return "absent"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def first_difference(want: JSON, got: JSON, pointer: str = "") -> tuple[str, str] | None:
    """The first JSON pointer where two documents differ, and why; ``None`` when they are equal.

    Strict about JSON types: ``true`` is not ``1`` and ``"1"`` is not ``1``.
    """
    want_kind, got_kind = _kind(want), _kind(got)
    if want_kind != got_kind:
        if got_kind == "null":
            return pointer, f"the field is unknown to the kubernetes client or cannot be {want_kind}"
        return pointer, f"expected a {got_kind} here, got {want_kind} {want!r:.60}"
    if isinstance(want, dict):
        return _object_difference(want, got, pointer)
    if isinstance(want, list):
        return _array_difference(want, got, pointer)
    if want != got:
        return pointer, f"value {want!r:.60} became {got!r:.60}"
    return None


def _object_difference(want: dict[str, JSON], got: dict[str, JSON], pointer: str) -> tuple[str, str] | None:
    for key, value in want.items():
        sub = f"{pointer}/{_escape(key)}"
        if key not in got:
            if value is None:
                return sub, "null is not a value Kubernetes keeps; remove the field instead"
            return sub, "field unknown to the kubernetes client (a typo, or the wrong place?)"
        found = first_difference(value, got[key], sub)
        if found is not None:
            return found
    for key in got:
        if key not in want:
            return f"{pointer}/{_escape(key)}", "field appeared on conversion"
    return None


def _array_difference(want: list[JSON], got: list[JSON], pointer: str) -> tuple[str, str] | None:
    if len(want) != len(got):
        return pointer, f"array of {len(want)} items became {len(got)} items"
    for index, (a, b) in enumerate(zip(want, got, strict=True)):
        found = first_difference(a, b, f"{pointer}/{index}")
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------------------- swap in place


def swap_in(target: Any, source: Any) -> None:
    """Make ``target`` hold ``source``'s contents, keeping ``target``'s identity (Airflow keeps a ref)."""
    if PYDANTIC_MODELS:
        # Bypass validate_assignment: ``source`` was validated as a whole already.
        target.__dict__.update(source.__dict__)
        object.__setattr__(target, "__pydantic_fields_set__", set(source.__pydantic_fields_set__))
    else:
        for attr in target.openapi_types:
            setattr(target, attr, getattr(source, attr))


def pod_ref_fields(pod: Any) -> tuple[str | None, str | None, dict[str, str], dict[str, str]]:
    """namespace, name, labels and annotations of a pod object, tolerating a malformed one."""
    metadata = getattr(pod, "metadata", None)
    if metadata is None:
        return None, None, {}, {}
    labels = getattr(metadata, "labels", None)
    annotations = getattr(metadata, "annotations", None)
    return (
        _str_or_none(getattr(metadata, "namespace", None)),
        _str_or_none(getattr(metadata, "name", None)),
        labels if isinstance(labels, dict) else {},
        annotations if isinstance(annotations, dict) else {},
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------- the package's public conversions


def pod_to_json(pod: k8s.V1Pod) -> dict[str, Any]:
    """``pod`` as Kubernetes JSON (camelCase keys, no nulls): the ``input.pod`` the hook sends to OPA.

    Raises :class:`ValueError` when the pod holds something that cannot be serialized.
    """
    return encode(pod)


def pod_from_json(doc: dict[str, Any]) -> k8s.V1Pod:
    """The ``V1Pod`` of a Kubernetes JSON document, exactly: it turns back into ``doc`` unchanged.

    Stricter than the kubernetes client's own deserializer, which drops unknown fields and coerces
    values: raises :class:`ValueError` naming the JSON pointer of the first field the installed
    kubernetes client cannot represent as written (a typo, a wrong type, a null).
    """
    return cast(k8s.V1Pod, decode(doc))
