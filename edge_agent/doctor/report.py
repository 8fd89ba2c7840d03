"""Runs every check and prints one line per finding, with its fix."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.config import LoadedConfig, load_config
from edge_agent.doctor.base import DoctorContext, Finding, Status
from edge_agent.doctor.checks import CHECKS
from edge_agent.install.layout import USER
from edgetwin_common.errors import ConfigInvalid

EXIT_OK = 0
EXIT_PROBLEMS = 1


def diagnose(config_path: Path, user: str = USER) -> list[Finding]:
    """Every finding, in the order of ``CHECKS``. A config that does not load is itself a
    finding (and the checks that need it are not run)."""
    loaded: LoadedConfig | None = None
    problem: ConfigInvalid | None = None
    try:
        loaded = load_config(config_path)
    except ConfigInvalid as exc:
        problem = exc
    context = DoctorContext(config_path, user, loaded, problem)
    findings: list[Finding] = []
    for check in CHECKS:
        if loaded is not None or not check.needs_config:
            findings += check.run(context)
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
