"""A real Mosquitto broker run as a child process on a free port, with a generated
config: what the MQTT tests, ``bench/mqtt.py`` and manual trials start (the machine's
own broker on 1883 is never used by them).

Debian's ``mosquitto`` package provides the binary (``make debian-packages``);
``binary()`` returns None where it is missing so a caller can say so.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edgetwin_common.testing import DEFAULT_GUARD_S, free_port

__all__ = ["Mosquitto", "MosquittoTls", "binary"]

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def binary() -> str | None:
    """The mosquitto executable: $MOSQUITTO, then the Debian paths, then $PATH."""
    env = os.environ.get("MOSQUITTO")
    if env:
        return env if Path(env).exists() else None
    for path in _CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("mosquitto")


@dataclass(frozen=True, slots=True)
class MosquittoTls:
    """The listener's TLS: its certificate and key, the CA that clients' certificates
    must chain to, and whether a client certificate is required."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False

    def config_lines(self) -> list[str]:
        return [
            f"cafile {self.ca_file}",
            f"certfile {self.cert_file}",
            f"keyfile {self.key_file}",
            f"require_certificate {'true' if self.require_certificate else 'false'}",
        ]


class Mosquitto:
    """One broker listening on 127.0.0.1:``port`` (a free one by default), its config,
    persistence and log under ``directory``.

    ``password_file`` / ``acl_file``: Mosquitto's own formats (``allow_anonymous`` is
    then false unless asked). ``message_size_limit``: bytes, 0 for the broker's default.
    ``tls``: the listener speaks TLS only. Persistence is on, so a ``restart`` keeps
    retained messages and QoS 1 sessions, as a production broker does. Use as a context
    manager or ``start`` / ``stop``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        allow_anonymous: bool | None = None,
        message_size_limit: int = 0,
        tls: MosquittoTls | None = None,
        executable: str | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.password_file = password_file
        self.acl_file = acl_file
        self.allow_anonymous = password_file is None if allow_anonymous is None else allow_anonymous
        self.message_size_limit = message_size_limit
        self.tls = tls
        found = executable or binary()
        if found is None:
            raise FileNotFoundError("mosquitto not found (Debian: apt install mosquitto)")
        self.executable = found
        self.config_path = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        """The generated mosquitto.conf."""
        lines = [
            f"listener {self.port} {self.host}",
            *(self.tls.config_lines() if self.tls is not None else []),
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to the "mosquitto" user, which cannot
            # read the files a test or bench wrote in its own temporary folder.
            lines.append("user root")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.message_size_limit:
            lines.append(f"message_size_limit {self.message_size_limit}")
        return "\n".join(lines) + "\n"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = DEFAULT_GUARD_S) -> None:
        """Write the config, start the broker and wait until it accepts connections.
        Raises RuntimeError (with the broker's log) when it exits or never listens."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        self._process = subprocess.Popen(
            [self.executable, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self._log_tail()}")
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {self.port}: {self._log_tail()}")
            time.sleep(0.02)

    def reload(self) -> None:
        """SIGHUP: the broker re-reads its password and ACL files."""
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the broker saves its persistence file), then SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start on the same port, with the same persistence."""
        self.stop()
        self.start()

    def _log_tail(self) -> str:
        text = ""
        if self.log_path.exists():
            text = self.log_path.read_text(errors="replace")[-2000:]
        if self._process is not None and self._process.stderr is not None:
            text += self._process.stderr.read().decode(errors="replace")[-2000:]
        return text.strip() or "(no log)"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
