"""Named device groups (canary groups of staged rollouts)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine, delete, insert, select

from cloud_sync.db.models import Device, DeviceGroupMember
from cloud_sync.db.session import write_lock
from cloud_sync.errors import DeviceNotFound


def _device_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(names))
    rows = conn.execute(select(Device.name, Device.id).where(Device.name.in_(wanted)))
    found: dict[str, int] = {r[0]: r[1] for r in rows}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise DeviceNotFound(f"no device named {', '.join(repr(n) for n in missing)}")
    return found


def add_to_group(engine: Engine, group: str, devices: Iterable[str]) -> list[str]:
    """Put devices into ``group`` (created on first use); idempotent. Returns the group's
    members afterwards. Raises DeviceNotFound (nothing added)."""
    with write_lock(engine), engine.begin() as conn:
        ids = _device_ids(conn, devices)
        present = set(
            conn.execute(
                select(DeviceGroupMember.device_id).where(DeviceGroupMember.group_name == group)
            ).scalars()
        )
        new = [{"group_name": group, "device_id": i} for i in ids.values() if i not in present]
        if new:
            conn.execute(insert(DeviceGroupMember), new)
        return group_members(conn, group)


def remove_from_group(engine: Engine, group: str, devices: Iterable[str]) -> list[str]:
    """Take devices out of ``group``. Returns the members afterwards. Raises DeviceNotFound."""
    with write_lock(engine), engine.begin() as conn:
        ids = _device_ids(conn, devices)
        conn.execute(
            delete(DeviceGroupMember).where(
                DeviceGroupMember.group_name == group,
                DeviceGroupMember.device_id.in_(list(ids.values())),
            )
        )
        return group_members(conn, group)


def group_members(conn: Connection, group: str) -> list[str]:
    """Device names in ``group``, sorted; [] for an unknown group."""
    return list(
        conn.execute(
            select(Device.name)
            .join(DeviceGroupMember, DeviceGroupMember.device_id == Device.id)
            .where(DeviceGroupMember.group_name == group)
            .order_by(Device.name)
        ).scalars()
    )


def list_groups(engine: Engine) -> dict[str, list[str]]:
    """Group name -> device names, both sorted."""
    groups: dict[str, list[str]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(DeviceGroupMember.group_name, Device.name)
            .join(Device, DeviceGroupMember.device_id == Device.id)
            .order_by(DeviceGroupMember.group_name, Device.name)
        )
        for group, name in rows:
            groups.setdefault(group, []).append(name)
    return groups
