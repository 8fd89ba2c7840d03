"""Helpers that drive the product from outside, shipped in the package (the way gpiozero
ships its MockFactory) so that tests, benchmarks and the demo share one copy: a free TCP
port, polling until a condition holds, and a clock that moves only when told.

None of these is used by the product's own code paths.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

DEFAULT_GUARD_S = 30.0
"""How long a wait may last before it fails: a guard against hangs, never a timing
assertion (nothing here depends on how fast anything is)."""


def free_port(preferred: int = 0) -> int:
    """A TCP port on 127.0.0.1: ``preferred`` when it can be bound now, else any port
    that was free a moment ago (bound, then released)."""
    if preferred:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_until(
    condition: Callable[[], object],
    what: str = "",
    timeout_s: float = DEFAULT_GUARD_S,
    poll_s: float = 0.02,
) -> None:
    """Poll ``condition()`` until it is truthy. Raises AssertionError naming ``what``
    (or the condition) when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(poll_s)


async def wait_until_async(
    condition: Callable[[], object],
    what: str = "",
    timeout_s: float = DEFAULT_GUARD_S,
    poll_s: float = 0.005,
) -> None:
    """``wait_until`` for code on an event loop: sleeps with ``asyncio.sleep`` so the
    loop keeps running the code under test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(poll_s)


class FakeClock:
    """UNIX seconds that move only when the test moves them: pass it where the product
    takes a ``clock`` callable. ``advance(s)`` moves it forward; ``now`` may be set."""

    def __init__(self, now: float = 1.7e9) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self.now += seconds
        return self.now
