"""The periodic jobs of ``cloud-sync serve``, on one mechanism: ``PeriodicJob``.

- **Rollout evaluation** every [releases] evaluate_interval_s (0: none; use cron and
  ``cloud-sync releases evaluate``), docs/releases.md.
- **Notifications** every [notifications] check_interval_s when webhooks are configured:
  conditions raised and cleared, webhook calls sent and retried, docs/cloud.md.
- **Fleet retraining** every [training] interval_s (unset: none; use cron or a systemd
  timer), as a child process ``python -m cloud_sync retrain --fleet`` so TensorFlow and
  the Dask cluster never share the HTTP process's memory or threads: the forecasters
  and, with [training.twin] enabled (the default), the twins, docs/training.md.

The app runs the jobs it is given while it serves (``create_app(..., jobs=...)``).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.releases.rollout import evaluate_rollouts

log = logging.getLogger(__name__)

RETRAIN_GRACE_S = 30.0
"""How long a stopping service waits for a running retrain after SIGTERM, seconds."""


class ServiceJob(Protocol):
    """What ``serve`` runs beside the app: started at startup, stopped at shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class PeriodicJob:
    """Runs ``step`` on a thread of its own every ``period_s`` seconds (> 0, else
    ValueError), the first time one period after ``start()``, until ``stop()``.

    A step that raises is retried at the next period (a database outage must not end
    rollouts): the change from working to failing is logged once with its reason (and
    traceback), and the change back once; failures in between only count. ``cancel`` (optional) is
    called by ``stop()`` to interrupt a step in progress (a retrain child); a step never
    runs twice at once.
    """

    def __init__(
        self,
        name: str,
        period_s: float,
        step: Callable[[], None],
        cancel: Callable[[], None] | None = None,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"{name}: period_s must be > 0, got {period_s}")
        self.name = name
        self.period_s = period_s
        self.runs = 0
        """Steps that completed."""
        self.failures = 0
        """Steps that raised."""
        self._step = step
        self._cancel = cancel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._is_failing = False

    @property
    def is_failing(self) -> bool:
        """Whether the last step raised."""
        return self._is_failing

    def start(self) -> None:
        """Start the thread. Raises RuntimeError when started before (a job runs once)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started before")
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop: no further step starts; a running one is cancelled, then joined."""
        self._stop.set()
        if self._cancel is not None:
            self._cancel()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._step()
            # The supervisor boundary: whatever a step raises, the job outlives it.
            except Exception as exc:
                self.failures += 1
                if not self._is_failing:
                    log.error(
                        "%s failed (retrying every %g s): %s: %s",
                        self.name,
                        self.period_s,
                        type(exc).__name__,
                        exc,
                        exc_info=True,
                    )
                self._is_failing = True
                continue
            self.runs += 1
            if self._is_failing:
                log.info("%s works again", self.name)
            self._is_failing = False


def rollout_evaluation(engine: Engine, period_s: float) -> PeriodicJob:
    """``evaluate_rollouts`` every ``period_s``; a release that widens, stops or completes
    (or a device marking one bad) is logged."""

    def evaluate() -> None:
        result = evaluate_rollouts(engine)
        if result.is_change:
            log.info("rollouts: %s", result)

    return PeriodicJob("rollout-evaluation", period_s, evaluate)


def retrain_command(config_path: Path | None, database_url: str) -> list[str]:
    """The child's argv: a fleet retrain with the service's config and database."""
    argv = [sys.executable, "-m", "cloud_sync", "retrain", "--fleet", "--no-progress"]
    argv += ["--database-url", database_url]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    return argv


class RetrainChild:
    """A job step that runs ``argv`` as a child process and waits for it.

    Raises CalledProcessError when the child exits non-zero (a device failed, or the
    retrain could not start). ``cancel()`` terminates a running child (SIGTERM, then
    SIGKILL after ``grace_s``) and keeps any later call from starting one.
    """

    def __init__(self, argv: list[str], grace_s: float = RETRAIN_GRACE_S) -> None:
        self.argv = argv
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._is_cancelled = False

    def __call__(self) -> None:
        with self._lock:
            if self._is_cancelled:
                return
            self._child = child = subprocess.Popen(self.argv)
        code = child.wait()
        with self._lock:
            self._child = None
            if self._is_cancelled:
                return
        if code != 0:
            raise subprocess.CalledProcessError(code, self.argv[1:4])

    def cancel(self) -> None:
        with self._lock:
            self._is_cancelled = True
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                child.kill()


def fleet_retraining(argv: list[str], period_s: float) -> PeriodicJob:
    """``argv`` (``retrain_command``) as a child every ``period_s``; one run ends before
    the next starts, and stopping the job stops a running child."""
    child = RetrainChild(argv)
    return PeriodicJob("fleet-retraining", period_s, child, cancel=child.cancel)


def notifications(engine: Engine, config: CloudConfig) -> PeriodicJob:
    """A notification pass (``cloud_sync.notifications``) every [notifications]
    check_interval_s."""
    from cloud_sync.notifications import NotificationPass

    notifier = NotificationPass(engine, config)

    def notify() -> None:
        notifier.run()

    return PeriodicJob("notifications", config.notifications.check_interval_s, notify)


def serve_jobs(config: CloudConfig, engine: Engine, config_path: Path | None) -> list[PeriodicJob]:
    """The jobs ``config`` asks ``serve`` to run (not started). ``config_path``: the file
    ``config`` came from, for the retrain child (None: defaults and the database URL)."""
    jobs = []
    if config.releases.evaluate_interval_s:
        jobs.append(rollout_evaluation(engine, config.releases.evaluate_interval_s))
    if config.training.interval_s is not None:
        argv = retrain_command(config_path, config.database.url)
        jobs.append(fleet_retraining(argv, config.training.interval_s))
    if config.notifications.webhooks:
        jobs.append(notifications(engine, config))
    return jobs
