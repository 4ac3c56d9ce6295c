"""Fast JSON for the hot path: orjson when installed (about 10x cheaper on pods), the stdlib otherwise."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is not installed
    orjson = None  # type: ignore[assignment]

if orjson is not None:
    dumps = orjson.dumps

    def canonical(value: Any) -> bytes:
        """Bytes equal exactly when two JSON values are: keys sorted, ``true`` never ``1``."""
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    loads = orjson.loads
    DecodeErrors: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
else:  # pragma: no cover

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    loads = json.loads

    def canonical(value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    DecodeErrors = (json.JSONDecodeError, UnicodeDecodeError)


def copy(value: Any) -> Any:
    """A deep copy of a JSON value; a serialize/parse round trip beats ``copy.deepcopy`` several-fold."""
    return loads(dumps(value))
