"""Runs every check and prints one line per finding, with its fix."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.doctor import clock, cloud, disk, model, serial, store
from edge_agent.doctor.base import Finding, Status
from edge_agent.install.layout import USER
from edgetwin_common.errors import ConfigInvalid

EXIT_OK = 0
EXIT_PROBLEMS = 1


def diagnose(config_path: Path, user: str = USER) -> list[Finding]:
    """Every finding, in a fixed order. A config that does not load is itself a finding
    (and the checks that need it are not run)."""
    try:
        loaded = load_config(config_path)
    except ConfigInvalid as exc:
        return [
            Finding(
                "config",
                Status.FAIL,
                f"{config_path}: {exc}",
                f"edge-agent check-config {config_path} lists every problem with its key",
            ),
            *clock.check(),
        ]
    findings = [Finding("config", Status.OK, f"{config_path} is valid")]
    findings += serial.check(loaded.config, user)
    findings += model.check(loaded)
    findings += store.check(loaded)
    findings += clock.check()
    findings += disk.check(loaded)
    findings += cloud.check(loaded.config)
    return findings


def run_doctor(config_path: Path, user: str | None) -> int:
    findings = diagnose(config_path, user or USER)
    for f in findings:
        print(f"{f.status.value.upper():4s}  {f.check:7s} {f.message}")
        if f.fix and f.status in (Status.FAIL, Status.WARN):
            print(f"      {'':7s} fix: {f.fix}")
    failed = sum(f.status is Status.FAIL for f in findings)
    warned = sum(f.status is Status.WARN for f in findings)
    print(f"{failed} problem(s), {warned} warning(s)", file=sys.stderr if failed else sys.stdout)
    return EXIT_PROBLEMS if failed else EXIT_OK
