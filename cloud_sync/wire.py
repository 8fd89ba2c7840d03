"""The batch body on the wire: size caps, gzip decoding, strict JSON, storable values.

``decode_body`` inflates gzip incrementally (``zlib.decompressobj`` with ``max_length``)
and stops one byte past the cap, so a gzip bomb never inflates in memory;
``parse_json`` refuses NaN/Infinity; ``storable_problems`` finds what neither database
can hold. Each raises or returns located problems (``cloud_sync.ingest`` uses them).
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from cloud_sync.errors import BodyMalformed, BodyTooLarge, EncodingUnsupported
from edgetwin_contracts.batch import MAX_BATCH_BYTES, MAX_BATCH_DECOMPRESSED_BYTES

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_BODY_DEPTH = 32
"""Deepest nesting of objects and arrays in a batch (a real one has 6): deeper JSON would
pass the parser but not the serializer that stores ``reported``."""
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's "gzip container only" mode."""


def check_content_length(header: str | None, limit: int = MAX_BATCH_BYTES) -> None:
    """Refuse early from the Content-Length header. Raises BodyTooLarge / BodyMalformed."""
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise BodyMalformed(f"Content-Length {header!r} is not a number") from None
    if length > limit:
        raise BodyTooLarge(f"body of {length} bytes exceeds the cap of {limit} bytes")


def decode_body(
    raw: bytes,
    content_encoding: str | None,
    max_decompressed: int = MAX_BATCH_DECOMPRESSED_BYTES,
) -> bytes:
    """The JSON bytes of a request body that is plain or gzip (``Content-Encoding``).

    Memory stays below ``len(raw) + max_decompressed + 1`` bytes whatever the ratio.
    Raises EncodingUnsupported (415), BodyTooLarge (413), BodyMalformed (400: bad gzip,
    truncated stream, data after the gzip stream).
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(raw) > max_decompressed:
            raise BodyTooLarge(f"body exceeds the cap of {max_decompressed} bytes")
        return raw
    if encoding not in {"gzip", "x-gzip"}:
        raise EncodingUnsupported(
            f"Content-Encoding {content_encoding!r} is not supported (gzip or none)"
        )
    inflater = zlib.decompressobj(_GZIP_WBITS)
    out = bytearray()
    pending = raw
    try:
        while pending and not inflater.eof:
            # max_length: never inflate more than one byte past the cap in one step.
            out += inflater.decompress(pending, max_decompressed - len(out) + 1)
            if len(out) > max_decompressed:
                raise BodyTooLarge(f"body inflates beyond the cap of {max_decompressed} bytes")
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise BodyMalformed(f"body is not valid gzip: {exc}") from None
    if not inflater.eof:
        raise BodyMalformed("gzip stream is truncated")
    if inflater.unused_data:
        raise BodyMalformed("data after the end of the gzip stream")
    return bytes(out)


def _no_constants(name: str) -> Any:
    raise BodyMalformed(f"malformed JSON: {name} is not JSON")


def parse_json(data: bytes) -> Any:
    """Strict JSON (RFC 8259: no NaN or Infinity). Raises BodyMalformed (400)."""
    try:
        # Decode first: json.loads(bytes) would also guess UTF-16/32, which JSON forbids.
        document = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyMalformed(f"body is not UTF-8: {exc}") from None
    try:
        return json.loads(document, parse_constant=_no_constants)
    except RecursionError:
        raise BodyMalformed("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        raise BodyMalformed(f"malformed JSON: {exc}") from None


def storable_problems(value: Any) -> list[dict[str, Any]]:
    """Values neither database can hold, with their location: non-finite floats (1e999),
    integers outside 64 bits, NUL characters (PostgreSQL text refuses them), nesting
    deeper than MAX_BODY_DEPTH."""
    problems: list[dict[str, Any]] = []
    # Iterative: json.loads accepts nesting deeper than Python's recursion limit.
    stack: list[tuple[tuple[str | int, ...], Any]] = [(("body",), value)]
    while stack:
        loc, item = stack.pop()
        if len(loc) > MAX_BODY_DEPTH and isinstance(item, dict | list):
            problems.append(
                problem(loc[:8], f"nested deeper than {MAX_BODY_DEPTH} levels", "too_deep")
            )
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    problems.append(problem(loc, "key contains a NUL character", "nul"))
                stack.append(((*loc, key), child))
        elif isinstance(item, list):
            stack.extend(((*loc, i), child) for i, child in enumerate(item))
        elif isinstance(item, str):
            if "\x00" in item:
                problems.append(problem(loc, "string contains a NUL character", "nul"))
        elif isinstance(item, bool):
            pass
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                problems.append(problem(loc, "integer outside the 64-bit range", "int_range"))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(problem(loc, "number is not finite", "finite_number"))
    return problems


def problem(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}
