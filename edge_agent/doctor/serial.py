"""Serial ports: present, and readable and writable by the service user."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from edge_agent.doctor.base import DoctorContext, Finding, Status
from edge_agent.sources.serial import SerialSourceConfig

CHECK = "serial"


def may_read_write(path: Path, user: str) -> tuple[bool, str]:
    """Whether ``user`` (by uid, primary and supplementary groups) may open ``path``
    for reading and writing, from its mode bits; and the device's group. Raises
    KeyError for an unknown user, OSError when the path cannot be stat'ed."""
    entry = pwd.getpwnam(user)
    st = path.stat()
    group = grp.getgrgid(st.st_gid).gr_name
    gids = set(os.getgrouplist(user, entry.pw_gid))
    if entry.pw_uid == 0:
        return True, group
    if st.st_uid == entry.pw_uid:
        return st.st_mode & (stat.S_IRUSR | stat.S_IWUSR) == (stat.S_IRUSR | stat.S_IWUSR), group
    if st.st_gid in gids:
        return st.st_mode & (stat.S_IRGRP | stat.S_IWGRP) == (stat.S_IRGRP | stat.S_IWGRP), group
    return st.st_mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH), group


def check_port(name: str, port: str, user: str) -> Finding:
    if "://" in port:
        return Finding(CHECK, Status.SKIP, f"source {name}: {port} is a URL, not a device file")
    path = Path(port)
    if not path.exists():
        return Finding(
            CHECK,
            Status.FAIL,
            f"source {name}: {port} does not exist",
            "plug the adapter in, find it with `ls -l /dev/serial/by-id/`, and set that "
            "path as the source's port in the config",
        )
    try:
        ok, group = may_read_write(path, user)
    except KeyError:
        return Finding(
            CHECK,
            Status.FAIL,
            f"source {name}: user {user} does not exist",
            "sudo edge-agent install (creates the user in dialout and gpio)",
        )
    real = path.resolve()
    if not real.is_char_device():
        return Finding(CHECK, Status.WARN, f"source {name}: {real} is not a character device")
    if not ok:
        return Finding(
            CHECK,
            Status.FAIL,
            f"source {name}: {user} may not read and write {real} (group {group}, "
            f"mode {stat.filemode(real.stat().st_mode)})",
            f"sudo usermod -aG {group} {user} && sudo systemctl restart edge-agent",
        )
    return Finding(CHECK, Status.OK, f"source {name}: {real} read/write for {user} (group {group})")


def check(context: DoctorContext) -> list[Finding]:
    sources = context.loaded.config.sources
    serial = [s for s in sources if isinstance(s, SerialSourceConfig)]
    if not serial:
        return [Finding(CHECK, Status.SKIP, "no serial sources in the config")]
    return [check_port(s.name, s.port, context.user) for s in serial]
