"""Raw Modbus words and bits -> numbers. Pure functions, no I/O.

A 32-bit value spans two registers. The Modbus spec sends each register big-endian and
says nothing about the order of the two registers; devices differ on both, hence
``word_order`` and ``byte_order`` (docs/io.md has a table of the usual combinations).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from edge_agent.sources.modbus.config import ByteOrder, DataType

__all__ = ["decode_words", "encode_value"]

_FORMATS: dict[DataType, str] = {
    DataType.UINT16: ">H",
    DataType.INT16: ">h",
    DataType.UINT32: ">I",
    DataType.INT32: ">i",
    DataType.FLOAT32: ">f",
}


def _ordered_bytes(words: Sequence[int], word_order: ByteOrder, byte_order: ByteOrder) -> bytes:
    """The words as one big-endian byte string, undoing the device's orders."""
    ordered = words if word_order is ByteOrder.BIG else list(reversed(words))
    out = bytearray()
    for word in ordered:
        hi, lo = (word >> 8) & 0xFF, word & 0xFF
        out += bytes((hi, lo)) if byte_order is ByteOrder.BIG else bytes((lo, hi))
    return bytes(out)


def decode_words(
    words: Sequence[int],
    data_type: DataType,
    word_order: ByteOrder = ByteOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
) -> float:
    """The number held in ``words`` (16-bit register values, as read, in address order).

    Raises ValueError when ``len(words)`` is not ``data_type.words`` or a word is outside
    0..65535 (both mean a bug in the caller, not bad input). A float32 may come back NaN
    or infinite; the caller decides what to do with it.
    """
    if data_type is DataType.BOOL:
        raise ValueError("bool values come from bits, not words")
    if len(words) != data_type.words:
        raise ValueError(f"{data_type.value} needs {data_type.words} word(s), got {len(words)}")
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"not 16-bit words: {list(words)}")
    raw = _ordered_bytes(words, word_order, byte_order)
    value: float = struct.unpack(_FORMATS[data_type], raw)[0]
    return float(value)


def encode_value(
    value: float,
    data_type: DataType,
    word_order: ByteOrder = ByteOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
) -> list[int]:
    """The registers a device with these orders would hold for ``value`` (the inverse of
    ``decode_words``; simulated devices and tests use it). Raises struct.error when the
    value does not fit the type."""
    if data_type is DataType.BOOL:
        raise ValueError("bool values are bits, not words")
    fmt = _FORMATS[data_type]
    raw = struct.pack(fmt, value if data_type is DataType.FLOAT32 else int(value))
    words_be = [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]
    if byte_order is ByteOrder.LITTLE:
        words_be = [((w & 0xFF) << 8) | (w >> 8) for w in words_be]
    return words_be if word_order is ByteOrder.BIG else list(reversed(words_be))
