"""The install and uninstall steps. Each one looks first and acts only when needed, and
says what it did; commands go through a ``Runner`` so the caller sees every one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from edge_agent.errors import InstallFailed
from edge_agent.install.layout import UNIT_NAME, USER, Layout, config_template, packaged


class Outcome(StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StepResult:
    step: str
    outcome: Outcome
    detail: str


Runner = Callable[[Sequence[str]], None]


def run_command(argv: Sequence[str]) -> None:
    """Run a command, its output passed through; raises InstallFailed on a non-zero exit."""
    print("+ " + " ".join(argv), flush=True)
    try:
        subprocess.run(list(argv), check=True)
    except FileNotFoundError as exc:
        raise InstallFailed(f"{argv[0]} not found: {exc}") from None
    except subprocess.CalledProcessError as exc:
        raise InstallFailed(f"{' '.join(argv)} exited {exc.returncode}") from None


@dataclass(slots=True)
class Options:
    package: str
    """What pip installs into the venv: a requirement or a wheel/folder path."""
    pip_options: list[str] = field(default_factory=list)
    python: str = sys.executable
    """The interpreter the venv is made from (the system python3 on a device)."""
    device_name: str = field(default_factory=socket.gethostname)
    serial_port: str = "/dev/ttyUSB0"
    start: bool = True
    """On the live system: start (or restart) the service after enabling it."""


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    if path.is_file() and path.read_text("utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def _systemd_booted() -> bool:
    """systemd is PID 1 here (sd_booted(3)); not so in a chroot or a container."""
    return Path("/run/systemd/system").is_dir()


def user(layout: Layout, opts: Options, run: Runner) -> StepResult:
    """The system user, in dialout and gpio, through sysusers.d (idempotent by design)."""
    changed = _write_if_changed(layout.sysusers, packaged("edge-agent.sysusers"))
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        raise InstallFailed("systemd-sysusers not found: this install needs systemd")
    run([sysusers, f"--root={layout.root}", str(layout.sysusers)])
    return StepResult(
        "user",
        Outcome.DONE if changed else Outcome.UNCHANGED,
        f"{USER} in dialout, gpio ({layout.sysusers})",
    )


def venv(layout: Layout, opts: Options, run: Runner) -> StepResult:
    """The venv under /opt and the package in it (pip leaves a satisfied one alone)."""
    created = False
    if not layout.venv_python.exists():
        run([opts.python, "-m", "venv", str(layout.venv)])
        created = True
    try:
        run(
            [
                str(layout.venv_python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                *opts.pip_options,
                opts.package,
            ]
        )
    except InstallFailed as exc:
        # edgetwin is not on the package index: the usual cause is the default package.
        raise InstallFailed(
            f"{exc}: pip could not install {opts.package!r}; pass --package with a wheel "
            "(`make wheel` writes dist/edgetwin-*.whl) or a checkout folder"
        ) from None
    if not layout.agent_bin.exists():
        raise InstallFailed(f"{layout.agent_bin} missing after pip install {opts.package}")
    return StepResult(
        "venv", Outcome.DONE if created else Outcome.UNCHANGED, f"{layout.venv} ({opts.package})"
    )


def config(layout: Layout, opts: Options, run: Runner) -> StepResult:
    """/etc/edge-agent/agent.toml from the template, only when there is none: the
    operator's edits survive every re-install. Checked by the installed agent."""
    outcome = Outcome.UNCHANGED
    if not layout.config.exists():
        text = config_template(opts.device_name, opts.serial_port)
        layout.config_dir.mkdir(parents=True, exist_ok=True)
        _write_if_changed(layout.config, text, 0o640)
        outcome = Outcome.DONE
    # root:edge-agent 0640: the service reads it, nobody else (it may hold tokens).
    gid = _group_id(layout, USER)
    if os.geteuid() == 0 and gid is not None and layout.config.stat().st_gid != gid:
        os.chown(layout.config, 0, gid)
        layout.config.chmod(0o640)
        outcome = Outcome.DONE
    run([str(layout.agent_bin), "check-config", str(layout.config)])
    return StepResult("config", outcome, str(layout.config))


def unit(layout: Layout, opts: Options, run: Runner) -> StepResult:
    changed = _write_if_changed(layout.unit, packaged(UNIT_NAME))
    return StepResult("unit", Outcome.DONE if changed else Outcome.UNCHANGED, str(layout.unit))


def enable(layout: Layout, opts: Options, run: Runner) -> StepResult:
    """Enable at boot. On the running system also reload and (re)start it; in a chroot
    or a folder, systemctl works offline on the files alone."""
    if layout.is_live_root and _systemd_booted():
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "enable", UNIT_NAME])
        if opts.start:
            run(["systemctl", "restart", UNIT_NAME])
            return StepResult("enable", Outcome.DONE, f"{UNIT_NAME} enabled and (re)started")
        return StepResult("enable", Outcome.DONE, f"{UNIT_NAME} enabled")
    link = layout.at(f"/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}")
    if link.is_symlink():
        return StepResult("enable", Outcome.UNCHANGED, f"{UNIT_NAME} enabled (offline)")
    run(["systemctl", f"--root={layout.root}", "enable", UNIT_NAME])
    return StepResult("enable", Outcome.DONE, f"{UNIT_NAME} enabled (offline; starts at boot)")


INSTALL_STEPS = (user, venv, config, unit, enable)


def install(layout: Layout, opts: Options, run: Runner = run_command) -> list[StepResult]:
    """Every install step in order. Raises InstallFailed at the first that fails."""
    if layout.is_live_root and os.geteuid() != 0:
        raise InstallFailed("run it as root (sudo edge-agent install ...)")
    return [step(layout, opts, run) for step in INSTALL_STEPS]


def uninstall(layout: Layout, purge: bool, run: Runner = run_command) -> list[StepResult]:
    """Stop, disable and remove the unit and the venv. Config, data and the user stay
    unless ``purge`` (they hold the device's identity, its store and its history)."""
    if layout.is_live_root and os.geteuid() != 0:
        raise InstallFailed("run it as root (sudo edge-agent uninstall ...)")
    results = []
    if layout.unit.exists():
        if layout.is_live_root and _systemd_booted():
            run(["systemctl", "disable", "--now", UNIT_NAME])
        else:
            run(["systemctl", f"--root={layout.root}", "disable", UNIT_NAME])
        layout.unit.unlink()
        if layout.is_live_root and _systemd_booted():
            run(["systemctl", "daemon-reload"])
        results.append(StepResult("unit", Outcome.DONE, f"{UNIT_NAME} disabled and removed"))
    else:
        results.append(StepResult("unit", Outcome.UNCHANGED, "no unit"))
    if layout.venv.exists():
        shutil.rmtree(layout.venv)
        results.append(StepResult("venv", Outcome.DONE, f"{layout.venv} removed"))
    else:
        results.append(StepResult("venv", Outcome.UNCHANGED, "no venv"))
    if not purge:
        results.append(
            StepResult(
                "data",
                Outcome.SKIPPED,
                f"kept {layout.config_dir}, {layout.state_dir} and user {USER} "
                "(--purge removes them)",
            )
        )
        return results
    for folder in (layout.config_dir, layout.state_dir):
        if folder.exists():
            shutil.rmtree(folder)
    layout.sysusers.unlink(missing_ok=True)
    if _has_user(layout):
        run(["userdel", f"--root={layout.root}", USER])
    results.append(StepResult("data", Outcome.DONE, f"removed config, data and user {USER}"))
    return results


def _group_id(layout: Layout, name: str) -> int | None:
    group = layout.at("/etc/group")
    if not group.is_file():
        return None
    for line in group.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def _has_user(layout: Layout) -> bool:
    passwd = layout.at("/etc/passwd")
    if not passwd.is_file():
        return False
    return any(line.split(":", 1)[0] == USER for line in passwd.read_text().splitlines())
