"""`cloud-sync serve` under systemd (Type=notify): READY once migrated and listening,
WATCHDOG pings from uvicorn's own main loop, STOPPING on the way out.

The pings ride on uvicorn's tick (every 0.1 s on the event loop), so a blocked loop, the
failure a stateless replica can have, stops them and systemd restarts the replica.
"""

from __future__ import annotations

import time

from edgetwin_common.notify import Notifier, watchdog_period_s


class ServiceNotifier:
    """What the server tells systemd; a no-op outside a Type=notify unit."""

    def __init__(self, notifier: Notifier | None, period_s: float | None) -> None:
        self._notifier = notifier
        self._period_s = period_s
        self._next_ping = 0.0

    @classmethod
    def from_env(cls) -> ServiceNotifier:
        notifier = Notifier.from_env()
        return cls(notifier, watchdog_period_s() if notifier is not None else None)

    def ready(self, status: str) -> None:
        if self._notifier is not None:
            self._notifier.ready(status)

    def tick(self) -> None:
        if self._notifier is None or self._period_s is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self._notifier.watchdog()
            self._next_ping = now + self._period_s

    def stopping(self) -> None:
        if self._notifier is not None:
            self._notifier.stopping()
            self._notifier.close()
