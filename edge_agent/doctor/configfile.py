"""The config file: it loads and validates (the other checks depend on it)."""

from __future__ import annotations

from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "config"


def check(context: DoctorContext) -> list[Finding]:
    path = context.config_path
    if not path.exists():
        return [
            Finding(
                CHECK,
                Status.FAIL,
                # The fix is in the message: the one line a user reads first.
                f"no config at {path}: write one with `edge-agent init-config {path}`",
            )
        ]
    if context.config_problem is not None:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"{path}: {context.config_problem}",
                f"edge-agent check-config {path} lists every problem with its key",
            )
        ]
    return [Finding(CHECK, Status.OK, f"{path} is valid")]
