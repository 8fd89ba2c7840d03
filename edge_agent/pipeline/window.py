"""A fixed-length window of the most recent samples, readable without copying."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class SampleWindow:
    """The last ``length`` samples of one channel, oldest first.

    Each sample is written twice, at i and i + length, into a buffer of 2 * length, so
    the current window is always one contiguous slice; the slices are made once here
    and reused, so ``push`` and ``view`` allocate nothing.
    """

    __slots__ = ("_buffer", "_count", "_head", "_length", "_views")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        self._length = length
        self._buffer = np.zeros(2 * length, dtype=np.float64)
        self._views = [self._buffer[i + 1 : i + 1 + length] for i in range(length)]
        self._head = length - 1
        self._count = 0

    @property
    def length(self) -> int:
        return self._length

    @property
    def is_full(self) -> bool:
        return self._count >= self._length

    def push(self, value: float) -> None:
        head = self._head + 1
        if head == self._length:
            head = 0
        self._head = head
        self._buffer[head] = value
        self._buffer[head + self._length] = value
        self._count += 1

    def view(self) -> npt.NDArray[np.float64]:
        """The window, oldest first (valid once ``is_full``). A view into the buffer:
        the next ``push`` changes it."""
        return self._views[self._head]

    def reset(self) -> None:
        """Forget every sample (after a gap the old ones no longer lead up to the new)."""
        self._count = 0
