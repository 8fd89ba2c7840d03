"""Contextual novelty: has the channel been in this short shape before?

After contextOSE (Smirnov's contextual anomaly detector, open-source edition, one of
NAB's leading detectors): a reading is normal when the recent pattern it completes has
been seen before, whatever its residual. Each reading is quantized into one of
``levels`` bins of the channel's range so far; the last ``length`` bins, packed into one
integer, are the context. A context not in the table of contexts seen is novel (1.0),
one in it is familiar (0.0); either way it is then remembered.

The table is bounded: ``2 ** table_bits`` packed contexts in a preallocated array,
two-way set associative (a context lives in one of two neighbouring slots; a new one
evicts the slot the last insertion did not use), so a channel's memory never grows and
a context not seen for a long time may be forgotten, as in contextOSE's bounded sets.

Per sample: integer arithmetic on a packed context and two array reads and at most one
write; nothing allocated beyond Python numbers.
"""

from __future__ import annotations

import math
from array import array

_EMPTY = -1
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads packed contexts over the table
_MASK64 = (1 << 64) - 1


class ContextNovelty:
    """levels >= 2 bins per reading, length >= 1 readings per context (levels ** length
    must fit in 62 bits), 2 ** table_bits contexts remembered (table_bits in [4, 16])."""

    __slots__ = (
        "_context",
        "_count",
        "_high",
        "_length",
        "_levels",
        "_low",
        "_modulus",
        "_shift",
        "_table",
        "_table_mask",
        "_turn",
    )

    def __init__(self, levels: int, length: int, table_bits: int) -> None:
        if levels < 2 or length < 1 or not 4 <= table_bits <= 16:
            raise ValueError("levels must be >= 2, length >= 1, table_bits in [4, 16]")
        if length * math.log2(levels) > 62:
            raise ValueError(f"levels ** length must fit in 62 bits: {levels} ** {length}")
        self._levels = levels
        self._length = length
        self._modulus = levels**length
        self._table = array("q", [_EMPTY]) * (1 << table_bits)
        self._table_mask = (1 << table_bits) - 2  # even slot of the pair
        self._shift = 64 - table_bits
        self._context = 0
        self._count = 0
        self._turn = 0
        self._low = math.inf
        self._high = -math.inf

    @property
    def state_bytes(self) -> int:
        """Bytes of the context table (the rest is a few numbers)."""
        return self._table.itemsize * len(self._table)

    def score(self, value: float) -> float:
        """1.0 if the context ``value`` completes is new, else 0.0 (and 0.0 until
        ``length`` readings and two different values have been seen); then remember it."""
        low, high = self._low, self._high
        if value < low:
            self._low = low = value
        if value > high:
            self._high = high = value
        levels = self._levels
        if high > low:
            level = int((value - low) / (high - low) * levels)
            if level >= levels:
                level = levels - 1
        else:
            level = 0
        context = (self._context * levels + level) % self._modulus
        self._context = context
        self._count += 1
        if self._count < self._length or high <= low:
            return 0.0
        table = self._table
        slot = (((context * _MIX) & _MASK64) >> self._shift) & self._table_mask
        if table[slot] == context or table[slot + 1] == context:
            return 0.0
        turn = self._turn
        table[slot + turn] = context
        self._turn = 1 - turn
        return 1.0
