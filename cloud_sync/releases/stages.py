"""Stage planning: the plan of a release's stages, and the devices each stage names.

A stage is ``{"device": name}``, ``{"group": name}`` (a device group) or
``{"percent": p}``: the devices whose stable hash of (release id, device name) falls in
the first p of 100 buckets, and at least one device.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.db.models import Device
from cloud_sync.releases.errors import ReleaseInvalid
from cloud_sync.releases.groups import group_members
from cloud_sync.releases.records import device_id_of

Stage = dict[str, str | int]


def plan_stages(
    device: str | None, canary_group: str | None, canary_percent: int | None
) -> list[Stage]:
    """The rollout plan: one device; else a canary group and/or percentage before the
    whole fleet; else the whole fleet. Raises ReleaseInvalid for contradictory or
    out-of-range arguments (``canary_percent`` outside 1..100)."""
    if device is not None:
        if canary_group is not None or canary_percent is not None:
            raise ReleaseInvalid("a release to one device has no canary stage")
        return [{"device": device}]
    if canary_percent is not None and not 1 <= canary_percent <= 100:
        raise ReleaseInvalid(f"canary_percent must be 1..100, got {canary_percent}")
    stages: list[Stage] = []
    if canary_group is not None:
        stages.append({"group": canary_group})
    if canary_percent is not None and canary_percent < 100:
        stages.append({"percent": canary_percent})
    stages.append({"percent": 100})
    return stages


def in_percent(release_id: int, device: str, percent: int) -> bool:
    """Whether ``device`` falls in the first ``percent`` (0..100) of 100 buckets for this
    release: stable (a hash of both), and a device in at 10 % is in at 50 % too."""
    return _bucket(release_id, device) < percent


def _bucket(release_id: int, device: str) -> int:
    digest = hashlib.sha256(f"{release_id}\x00{device}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def stage_devices(conn: Connection, release: Any, index: int) -> list[tuple[int, str]]:
    """(device id, name) that stage ``index`` of ``release`` (its row) names, sorted by
    name. Raises DeviceNotFound for a device stage whose device is gone."""
    stage = release.stages[index]
    if "device" in stage:
        return [(device_id_of(conn, stage["device"]), stage["device"])]
    if "group" in stage:
        names = group_members(conn, stage["group"])
        query = select(Device.id, Device.name).where(Device.name.in_(names))
        return sorted(((r[0], r[1]) for r in conn.execute(query)), key=lambda d: d[1])
    percent = int(stage["percent"])
    everyone = sorted(
        ((r[0], r[1]) for r in conn.execute(select(Device.id, Device.name))), key=lambda d: d[1]
    )
    chosen = [(i, n) for i, n in everyone if in_percent(release.id, n, percent)]
    if not chosen and everyone:
        # A small fleet and a small percentage: still one canary, never none.
        chosen = [min(everyone, key=lambda d: _bucket(release.id, d[1]))]
    return chosen
