"""`edge-agent install` / `uninstall` into a temporary root: the files, the user, the
venv, the enable symlink; idempotent; the operator's config survives; a broken config
fails the install with its key; uninstall keeps config and data unless --purge. One
root for the whole story: creating a venv is the slow part."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.install.layout import packaged
from tests.conftest import require
from tests.packaging.conftest import run_installer


def _members(root: Path, group: str) -> list[str]:
    for line in (root / "etc/group").read_text().splitlines():
        name, _, _, members = line.split(":")
        if name == group:
            return [m for m in members.split(",") if m]
    raise AssertionError(f"no group {group} in {root}/etc/group")


def _verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify against the root, with the host's own units (targets)."""
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian: systemd)")
    units = root / "usr/lib/systemd/system"
    if not units.exists():
        shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", unit],
        capture_output=True,
        text=True,
        check=False,
    )


def test_install_twice_verify_then_uninstall(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    first = run_installer(
        root, "install", "--name", "pump-17", "--serial-port", "/dev/ttyACM3", wheel=wheel
    )
    assert first.returncode == 0, first.stdout + first.stderr
    for step in ("user", "venv", "config", "unit", "enable"):
        assert f"{step:8s} done" in first.stdout, first.stdout

    passwd = (root / "etc/passwd").read_text()
    assert any(
        line.startswith("edge-agent:") and line.endswith(":/usr/sbin/nologin")
        for line in passwd.splitlines()
    )
    assert _members(root, "dialout") == ["edge-agent"]
    assert _members(root, "gpio") == ["edge-agent"]
    assert (root / "opt/edge-agent/bin/edge-agent").is_file()
    unit = root / "etc/systemd/system/edge-agent.service"
    assert unit.read_text() == packaged("edge-agent.service")
    assert unit.read_text() == Path("packaging/systemd/edge-agent.service").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/edge-agent.service"
    assert wants.is_symlink()
    config = root / "etc/edge-agent/agent.toml"
    text = config.read_text()
    assert 'name = "pump-17"' in text and 'port = "/dev/ttyACM3"' in text
    # The installed default: the likelihood detector, alarming on gross anomalies after a
    # warm-up (at a sensor's raw rate the NAB level, 3, is a false alarm every few minutes).
    installed = load_config(config).config
    assert installed.channel_defaults.score.method == "likelihood"
    assert [
        (r.name, r.set, getattr(r, "warmup_s", None))
        for r in installed.alarms
        if r.type == "score_above"
    ] == [("anomaly", 100.0, 1800.0)]
    if os.geteuid() == 0:  # root:edge-agent 0640: the service reads it, nobody else
        group = next(
            line.split(":")[2]
            for line in (root / "etc/group").read_text().splitlines()
            if line.startswith("edge-agent:")
        )
        st = config.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, int(group), 0o640)

    # The installed unit, with its ExecStart really there, passes systemd's own check.
    verified = _verify(root, "edge-agent.service")
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr

    # The operator edits the config; a second run changes nothing and keeps the edit.
    config.write_text(text.replace('name = "pump-17"', 'name = "pump-17b"'))
    second = run_installer(root, "install", wheel=wheel)
    assert second.returncode == 0, second.stdout + second.stderr
    for step in ("user", "venv", "config", "unit", "enable"):
        assert f"{step:8s} unchanged" in second.stdout, second.stdout
    assert 'name = "pump-17b"' in config.read_text()
    assert _members(root, "dialout") == ["edge-agent"]

    # A config with a mistake fails the install, naming the key; nothing is overwritten.
    edited = config.read_text()
    config.write_text(edited.replace("[agent]", "[agent]\nnmae = 'typo'", 1))
    broken = run_installer(root, "install", wheel=wheel)
    assert broken.returncode == 1
    assert "agent.nmae" in broken.stdout + broken.stderr and "install failed" in broken.stderr
    config.write_text(edited)

    removed = run_installer(root, "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not wants.exists()
    assert not (root / "opt/edge-agent").exists()
    assert config.exists() and "edge-agent:" in (root / "etc/passwd").read_text()
    again = run_installer(root, "uninstall")
    assert again.returncode == 0 and "no unit" in again.stdout

    purged = run_installer(root, "uninstall", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not config.exists()
    assert "edge-agent:" not in (root / "etc/passwd").read_text()


def test_install_says_to_pass_package_when_pip_cannot_fetch_it(tmp_path: Path) -> None:
    """edgetwin is not on the package index: a package pip cannot fetch stops the install
    at the venv step with the way out, not only pip's exit status."""
    missing = tmp_path / "edgetwin-9.9.9-py3-none-any.whl"
    done = run_installer(
        tmp_path / "root",
        "install",
        "--package",
        str(missing),
        "--pip-option=--no-index",
        "--python",
        sys._base_executable,  # type: ignore[attr-defined]
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pass --package with a wheel" in done.stderr
    assert "make wheel" in done.stderr
