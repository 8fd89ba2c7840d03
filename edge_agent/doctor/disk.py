"""Free space where the store lives."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "disk"
MIN_FREE_BYTES = 64 << 20
"""Below this SQLite cannot checkpoint and journald starts dropping."""


def judge(free: int, store_max_bytes: int, where: Path) -> Finding:
    fix = (
        "free space (sudo journalctl --vacuum-size=50M; sudo apt clean), or lower [store] max_bytes"
    )
    if free < MIN_FREE_BYTES:
        return Finding(CHECK, Status.FAIL, f"{where}: only {free / 1e6:.0f} MB free", fix)
    if free < store_max_bytes:
        return Finding(
            CHECK,
            Status.WARN,
            f"{where}: {free / 1e6:.0f} MB free, less than [store] max_bytes "
            f"({store_max_bytes / 1e6:.0f} MB)",
            fix,
        )
    return Finding(CHECK, Status.OK, f"{where}: {free / 1e9:.1f} GB free")


def check(context: DoctorContext) -> list[Finding]:
    loaded = context.loaded
    where = loaded.resolve(loaded.config.store.path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    return [judge(shutil.disk_usage(where).free, loaded.config.store.max_bytes, where)]
