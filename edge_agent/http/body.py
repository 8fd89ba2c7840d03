"""Request bodies parsed strictly: JSON as RFC 8259 defines it (no NaN, no Infinity, no
number that overflows a double, like 1e999), bounded in size and depth, then validated
by a pydantic model; every refusal is a 422 whose detail names the field, and never
echoes the value back (a NaN in an error answer would turn it into a 500)."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 16 * 1024
"""Bodies of the agent's API are small objects; anything larger is refused (413)."""


class _NotFinite:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _constant(text: str) -> _NotFinite:
    return _NotFinite(text)


def _number(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


Loc = tuple[str | int, ...]


def _find_not_finite(value: Any, path: Loc) -> tuple[Loc, str] | None:
    if isinstance(value, _NotFinite):
        return path, value.text
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_not_finite(item, (*path, key))
        if found is not None:
            return found
    return None


def _refuse(loc: Loc, msg: str, kind: str, status: int = 422) -> HTTPException:
    return HTTPException(status, detail=[{"loc": ["body", *loc], "msg": msg, "type": kind}])


async def read_body(request: Request) -> bytes:
    """The request body, read no further than MAX_BODY_BYTES. Raises HTTPException 413."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise _refuse((), f"body above {MAX_BODY_BYTES} bytes", "too_large", 413)
    return bytes(received)


def parse_body(raw: bytes, model: type[M], *, empty: M) -> M:
    """``raw`` as ``model``; an empty body is ``empty``. Raises HTTPException: 413 above
    MAX_BODY_BYTES, 422 for malformed JSON, a non-finite number (naming its field), or a
    validation error (each naming its field, without the input)."""
    if len(raw) > MAX_BODY_BYTES:
        raise _refuse((), f"body above {MAX_BODY_BYTES} bytes", "too_large", 413)
    if not raw.strip():
        return empty
    try:
        data = json.loads(raw, parse_constant=_constant, parse_float=_number)
    except RecursionError:
        raise _refuse((), "JSON nested too deep", "json_invalid") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _refuse((), f"malformed JSON: {exc}", "json_invalid") from None
    try:
        found = _find_not_finite(data, ())
    except RecursionError:
        raise _refuse((), "JSON nested too deep", "json_invalid") from None
    if found is not None:
        where, text = found
        raise _refuse(where, f"{text} is not a finite number", "finite_number")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(
            422,
            detail=[
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ],
        ) from None
