"""A wheel of this checkout (built once per session) and a helper to run the installer
into a temporary root the way an operator runs it: as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO, require


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("edgetwin-*.whl")
    return found


def run_installer(
    root: Path, *args: str, wheel: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m edge_agent.install ARGS --root ROOT`` as a child process.

    The new venv gets the wheel alone (--no-deps); its dependencies come from this test
    venv through PYTHONPATH, so the test does not download and unpack 200 MB of wheels
    (scripts/arm64-smoke.sh installs them for real). PYTHONPATH entries do not run .pth
    files, so edge_agent itself is imported from the wheel the installer put there."""
    require(shutil.which("systemd-sysusers") is not None, "systemd-sysusers (Debian: systemd)")
    require(shutil.which("systemctl") is not None, "systemctl (Debian: systemd)")
    extra: list[str] = []
    if wheel is not None:
        extra = [
            "--package",
            str(wheel),
            "--pip-option=--no-deps",
            "--python",
            sys._base_executable,
        ]
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.install", *args, "--root", str(root), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
