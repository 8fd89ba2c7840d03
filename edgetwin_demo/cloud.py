"""The demo's cloud: a real `cloud-sync serve` on 127.0.0.1 with an SQLite file, a
release key pair made for the run, and `cloud-sync retrain` run as the operator would.

The device package does not depend on the cloud one: when cloud_sync is not installed
the demo runs without it and says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from edgetwin_common.testing import free_port
from edgetwin_contracts.signing import generate_private_key, save_keypair

_NATIVE_NOISE = (
    "WARNING: All log messages before absl",
    "INFO: Created TensorFlow Lite",
    "I0000 ",
    "W0000 ",
)
"""What TensorFlow's and LiteRT's C++ runtimes print whatever the log level."""
START_TIMEOUT_S = 60.0
RETRAIN_TIMEOUT_S = 900.0


class DemoCloud:
    """`cloud-sync serve` as a child process, configured by a cloud.toml written here.

    The release private key stays in ``<workdir>/keys`` on the cloud side; devices get
    only ``public_key``. Training needs few summaries (the demo fast-forwards hours of
    pump life, not months) and one Dask worker (one device to fine-tune)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database_url = f"sqlite:///{workdir / 'cloud-sync.db'}"
        self.config = workdir / "cloud.toml"
        self.public_key = workdir / "keys" / "release.pub"
        self.reports = workdir / "training-reports"
        self.url = ""
        self._admin = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "cloud-sync.log"

    @staticmethod
    def is_available() -> bool:
        return importlib.util.find_spec("cloud_sync.http") is not None

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cloud_sync", *args, "--config", str(self.config)]

    def start(self) -> None:
        save_keypair(generate_private_key(), self.workdir / "keys")
        self.config.write_text(
            f"""[database]
url = "{self.database_url}"

[auth]
admin_token = "{self._admin}"

[releases]
public_key = "{self.public_key}"
private_key = "{self.workdir / "keys" / "release.key"}"
evaluate_interval_s = 5

[training]
n_workers = 1
min_summaries = 200
reports_dir = "{self.reports}"
""",
            encoding="utf-8",
        )
        port = free_port()
        serve = self._cli("serve", "--port", str(port), "--log-level", "warning")
        with self._log.open("wb") as sink:
            self._process = subprocess.Popen(serve, stdout=sink, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"cloud-sync serve did not start: see {self._log}")

    def add_device(self, name: str) -> str:
        """Register ``name``; returns its token (printed once by `devices add`)."""
        added = subprocess.run(
            self._cli("devices", "add", name),
            capture_output=True,
            text=True,
            check=True,
            timeout=START_TIMEOUT_S,
        )
        return added.stdout.strip().splitlines()[-1]

    def twin(self, token: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.url}/v1/twin", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        answer.raise_for_status()
        twin: dict[str, Any] = answer.json()
        return twin

    def _admin_get(self, path: str) -> Any:
        answer = httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self._admin}"}, timeout=5
        )
        answer.raise_for_status()
        return answer.json()

    def twin_of(self, device: str) -> dict[str, Any] | None:
        """The device's twin as the operator sees it; None when the cloud has none."""
        try:
            twin: dict[str, Any] = self._admin_get(f"/v1/devices/{device}/twin")
        except httpx.HTTPError:
            return None
        return twin

    def has_release(self, device: str) -> bool:
        """Whether a release targets ``device`` (the retrain promoted a model for it)."""
        releases: list[dict[str, Any]] = self._admin_get("/v1/releases")
        return any(
            r["target"].get("device") == device and r.get("kind", "model") == "model"
            for r in releases
        )

    def retrain(self, echo: Callable[[str], None]) -> int:
        """`cloud-sync retrain --fleet`, its output (progress bars included) passed on
        line by line; returns its exit code."""
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with subprocess.Popen(
            self._cli("retrain", "--fleet"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                # tqdm redraws with carriage returns: show each bar's final state only.
                text = line.rstrip("\n").split("\r")[-1].rstrip()
                if text and not text.startswith(_NATIVE_NOISE):
                    echo(f"    | {text}")
            return proc.wait(RETRAIN_TIMEOUT_S)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
