"""The periodic jobs: one supervised mechanism, state changes logged once, a retrain
child stopped with the service, and the jobs run by the app while it serves."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig, ReleasesSection, TrainingSection
from cloud_sync.http.app import create_app
from cloud_sync.jobs import PeriodicJob, RetrainChild, retrain_command, serve_jobs
from edgetwin_common.testing import wait_until

PERIOD_S = 0.01
WAIT_S = 30.0
"""Upper bound for a thread to get somewhere; the tests never measure time."""


class Flaky:
    """A step that fails ``failures`` times, then works; ``done`` is set after ``calls``."""

    def __init__(self, failures: int, calls: int) -> None:
        self.failures = failures
        self.calls = calls
        self.count = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        if self.count >= self.calls:
            self.done.set()
        if self.count <= self.failures:
            raise ConnectionError(f"database away ({self.count})")


def test_failures_are_retried_and_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    step = Flaky(failures=3, calls=6)
    job = PeriodicJob("flaky-job", PERIOD_S, step)
    with caplog.at_level(logging.INFO, logger="cloud_sync.jobs"):
        job.start()
        assert step.done.wait(WAIT_S)
        job.stop()
    lines = [r.getMessage() for r in caplog.records if "flaky-job" in r.getMessage()]
    assert lines[0] == (
        "flaky-job failed (retrying every 0.01 s): ConnectionError: database away (1)"
    )
    assert lines[1:] == ["flaky-job works again"]
    assert job.failures == 3 and job.runs >= 3
    assert not job.is_failing


def test_a_job_runs_once_and_refuses_a_bad_period() -> None:
    job = PeriodicJob("once", PERIOD_S, lambda: None)
    job.start()
    job.stop()
    with pytest.raises(RuntimeError, match="started before"):
        job.start()
    with pytest.raises(ValueError, match="period_s"):
        PeriodicJob("never", 0, lambda: None)


def _sleeper(started: Path) -> list[str]:
    code = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(600)"
    return [sys.executable, "-c", code]


def test_stopping_the_job_stops_a_running_retrain_child(tmp_path: Path) -> None:
    started = tmp_path / "started"
    child = RetrainChild(_sleeper(started), grace_s=10)
    job = PeriodicJob("fleet-retraining", PERIOD_S, child, cancel=child.cancel)
    job.start()
    wait_until(started.exists, "the retrain child to start", timeout_s=WAIT_S)
    running = child._child
    assert running is not None and running.poll() is None
    job.stop()
    assert running.poll() is not None  # terminated and reaped
    assert job.failures == 0  # a cancelled retrain is not a failed one
    child()  # cancelled for good: starts nothing
    assert child._child is None


def test_a_failing_retrain_raises_with_its_exit_code() -> None:
    child = RetrainChild([sys.executable, "-c", "raise SystemExit(1)"])
    with pytest.raises(subprocess.CalledProcessError) as caught:
        child()
    assert caught.value.returncode == 1


def test_serve_runs_the_jobs_its_config_asks_for(engine: Engine, tmp_path: Path) -> None:
    quiet = CloudConfig(releases=ReleasesSection(evaluate_interval_s=0))
    assert serve_jobs(quiet, engine, None) == []
    busy = CloudConfig(
        releases=ReleasesSection(evaluate_interval_s=30),
        training=TrainingSection(interval_s=3600),
    )
    jobs = serve_jobs(busy, engine, tmp_path / "cloud.toml")
    assert [(j.name, j.period_s) for j in jobs] == [
        ("rollout-evaluation", 30),
        ("fleet-retraining", 3600),
    ]
    argv = retrain_command(tmp_path / "cloud.toml", "sqlite:///x.db")
    assert argv[1:] == [
        "-m",
        "cloud_sync",
        "retrain",
        "--fleet",
        "--no-progress",
        "--database-url",
        "sqlite:///x.db",
        "--config",
        str(tmp_path / "cloud.toml"),
    ]


def test_the_app_runs_its_jobs_while_it_serves(config: CloudConfig, engine: Engine) -> None:
    step = Flaky(failures=0, calls=2)
    job = PeriodicJob("app-job", PERIOD_S, step)
    app = create_app(config, engine, jobs=[job])
    assert step.count == 0
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert step.done.wait(WAIT_S)
    count = step.count
    assert job._thread is not None and not job._thread.is_alive()
    assert step.count == count  # stopped with the app
