"""The SQLite store: its folder writable, the file (when there is one) intact."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "store"


def check(context: DoctorContext) -> list[Finding]:
    loaded = context.loaded
    path = loaded.resolve(loaded.config.store.path)
    folder = path.parent
    if not folder.is_dir():
        return [
            Finding(
                CHECK,
                Status.WARN,
                f"{folder} does not exist yet",
                "systemd creates it at the first start (StateDirectory=); without systemd: "
                f"sudo install -d -o edge-agent -g edge-agent -m 0750 {folder}",
            )
        ]
    if not path.exists():
        if not os.access(folder, os.W_OK):
            return [
                Finding(
                    CHECK,
                    Status.FAIL,
                    f"{folder} is not writable",
                    f"sudo chown edge-agent:edge-agent {folder}",
                )
            ]
        return [Finding(CHECK, Status.OK, f"{path} will be created at the first start")]
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        result = str(exc)
    if result != "ok":
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"{path} is damaged: {result}",
                f"sudo systemctl stop edge-agent && sudo mv {path} {path}.broken && "
                "sudo systemctl start edge-agent (the outbox not yet synced is lost)",
            )
        ]
    size = path.stat().st_size
    return [Finding(CHECK, Status.OK, f"{path} intact ({size / 1e6:.1f} MB)")]
