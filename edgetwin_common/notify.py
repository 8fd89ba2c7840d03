"""sd_notify(3) without libsystemd: one datagram per message to ``$NOTIFY_SOCKET``.

The protocol is a few ``KEY=VALUE`` lines sent over an ``AF_UNIX`` datagram socket; a
path starting with ``@`` names an abstract socket. Sending never blocks and never
raises: a service manager that has gone away must not take the agent with it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to one socket address (``NOTIFY_SOCKET`` syntax)."""

    def __init__(self, address: str) -> None:
        if not address or address[0] not in "/@":
            raise ValueError(f"NOTIFY_SOCKET must be a path or @abstract name, got {address!r}")
        self.address = address
        self._target = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._is_failing = False
        self.sent = 0
        """Messages the socket accepted."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier systemd asked for (Type=notify sets NOTIFY_SOCKET), else None."""
        address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        return cls(address) if address else None

    def send(self, **fields: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False when it could not be sent."""
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._sock.sendto(message, self._target)
        except OSError as exc:
            if not self._is_failing:
                log.warning("cannot notify the service manager at %s: %s", self.address, exc)
            self._is_failing = True
            return False
        if self._is_failing:
            log.info("notifying the service manager again")
        self._is_failing = False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self) -> bool:
        return self.send(STOPPING="1", STATUS="stopping")

    def close(self) -> None:
        self._sock.close()


def watchdog_period_s(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    advises), or None when no watchdog is asked for, or it is meant for another
    process (``WATCHDOG_PID``)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6
