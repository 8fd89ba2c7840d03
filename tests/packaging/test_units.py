"""The systemd units: `systemd-analyze verify` finds nothing, `systemd-analyze
security` rates them at or below the exposure target, and a unit with errors is caught
(verify exits 0 on unknown keys and bad values, so any output is a failure)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, require

UNITS = REPO / "packaging" / "systemd"
EXPOSURE_TARGET = 3.0


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian: systemd)")
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, check=False, timeout=120
    )


def _root_with(tmp_path: Path, unit: Path, text: str | None = None) -> Path:
    """A root holding the unit, the host's units (targets) and an executable at its
    ExecStart path, so verify checks the unit and nothing about this machine."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    text = unit.read_text() if text is None else text
    dest = root / "etc/systemd/system" / unit.name
    dest.parent.mkdir(parents=True)
    dest.write_text(text)
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M)
    assert exec_start is not None
    binary = root / exec_start.group(1).lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return root


@pytest.mark.parametrize("name", ["edge-agent.service", "cloud-sync.service"])
def test_unit_verifies(tmp_path: Path, name: str) -> None:
    root = _root_with(tmp_path, UNITS / name)
    result = _analyze("verify", f"--root={root}", name)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


@pytest.mark.parametrize("name", ["edge-agent.service", "cloud-sync.service"])
def test_unit_exposure_within_target(name: str) -> None:
    result = _analyze("security", "--offline=true", "--no-pager", str(UNITS / name))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout[-2000:] + result.stderr
    exposure = float(found.group(1))
    print(f"{name}: exposure {exposure}")
    assert exposure <= EXPOSURE_TARGET
    # The figure the unit's header documents is the one measured.
    assert f"exposure {exposure} measured" in (UNITS / name).read_text()


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"), "Failed to parse boolean"),
        (("Restart=on-failure", "Restart=on-failure\nRestartSecs=5"), "Unknown key"),
        (("Type=notify", "Type=notifyy"), "Failed to parse service type"),
        (("[Install]", "[Instal]"), "Unknown section"),
    ],
)
def test_verify_catches_a_broken_unit(
    tmp_path: Path, edit: tuple[str, str], complaint: str
) -> None:
    unit = UNITS / "edge-agent.service"
    text = unit.read_text()
    assert edit[0] in text
    root = _root_with(tmp_path, unit, text.replace(edit[0], edit[1], 1))
    result = _analyze("verify", f"--root={root}", unit.name)
    assert complaint in result.stderr, result.stderr


def test_missing_executable_is_caught(tmp_path: Path) -> None:
    root = _root_with(tmp_path, UNITS / "edge-agent.service")
    (root / "opt/edge-agent/bin/edge-agent").unlink()
    result = _analyze("verify", f"--root={root}", "edge-agent.service")
    assert result.returncode != 0 and "is not executable" in result.stderr
