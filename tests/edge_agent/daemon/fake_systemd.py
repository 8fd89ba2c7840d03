"""The receiving end of sd_notify, as systemd has it: a bound AF_UNIX datagram socket
given to the service as NOTIFY_SOCKET."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.edge_agent.integration.helpers import GUARD_S


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: a bound AF_UNIX datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def receive(self, timeout_s: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except (TimeoutError, BlockingIOError):
            return None
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def wait_for(self, key: str, timeout_s: float = GUARD_S) -> list[dict[str, str]]:
        """Messages up to and including the first carrying ``key``."""
        seen = []
        while True:
            message = self.receive(timeout_s)
            assert message is not None, f"no {key} within {timeout_s} s; got {seen}"
            seen.append(message)
            if key in message:
                return seen

    def drain(self) -> list[dict[str, str]]:
        out = []
        while (message := self.receive(0.0 if out else 0.01)) is not None:
            out.append(message)
        return out
