"""``serve``'s retrain schedule ([training] interval_s).

Every ``interval_s`` the service runs ``cloud-sync retrain --fleet`` as a child process
(``python -m cloud_sync``), so TensorFlow and the Dask cluster never share the HTTP
process's memory or threads, and one retrain ends before the next starts. Without
interval_s, use cron or a systemd timer (docs/training.md).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def retrain_command(config_path: Path | None, database_url: str) -> list[str]:
    """The child's argv: a fleet retrain with the service's config and database."""
    argv = [sys.executable, "-m", "cloud_sync", "retrain", "--fleet", "--no-progress"]
    argv += ["--database-url", database_url]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    return argv


class RetrainSchedule:
    """A thread that runs ``argv`` every ``interval_s`` seconds until ``stop()``.

    The first run is one interval after ``start()``. ``stop()`` terminates a running
    child (SIGTERM, then SIGKILL after ``grace_s``) and joins the thread.
    """

    def __init__(self, argv: list[str], interval_s: float, grace_s: float = 30.0) -> None:
        self.argv = argv
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.runs = 0
        self.failures = 0
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="retrain-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                child.kill()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                if self._stop.is_set():
                    return
                self._child = subprocess.Popen(self.argv)
            code = self._child.wait()
            self.runs += 1
            if code != 0 and not self._stop.is_set():
                self.failures += 1
                log.warning("scheduled retrain exited %d (%s)", code, " ".join(self.argv[1:4]))
