"""Cloud reachability: the sync URL answers /health; and, with the device token, the
cloud accepts it and holds a sequence for this device that the sync worker can continue
from (docs/sync.md, "Sequences out of range")."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from edge_agent.doctor.base import DoctorContext, Finding, Status
from edge_agent.sync.client import MAX_SEQUENCE, TwinView, strict_json

CHECK = "cloud"
TIMEOUT_S = 5.0


def check(context: DoctorContext) -> list[Finding]:
    sync = context.loaded.config.sync
    if not sync.enabled:
        return [Finding(CHECK, Status.SKIP, "sync is disabled ([sync] enabled = false)")]
    if not sync.url:  # transport = "mqtt" without an HTTP URL (docs/mqtt.md)
        return [Finding(CHECK, Status.SKIP, "sync goes through the MQTT broker; no url to check")]
    base = sync.url.rstrip("/")
    url = base + "/health"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"{url} does not answer: {exc}",
                "check [sync] url, DNS (getent hosts HOST), the firewall and the proxy; "
                "the agent keeps its outbox meanwhile",
            )
        ]
    if response.status_code != 200:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"{url} answered {response.status_code}",
                "is [sync] url the cloud-sync base URL (not a path below it)?",
            )
        ]
    found = [Finding(CHECK, Status.OK, f"{url} answers")]
    if sync.token is not None:
        found.append(check_twin(base, sync.token.get_secret_value()))
    return found


def check_twin(base: str, token: str) -> Finding:
    """GET {base}/v1/twin as the device (the token goes to the configured cloud only)."""
    url = base + "/v1/twin"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Finding(CHECK, Status.WARN, f"{url} does not answer: {exc}")
    if response.status_code in (401, 403):
        return Finding(
            CHECK,
            Status.FAIL,
            f"the cloud refuses this device's token ({response.status_code})",
            "set [sync] token to the token `cloud-sync` issued for this device",
        )
    if response.status_code != 200:
        return Finding(CHECK, Status.WARN, f"{url} answered {response.status_code}")
    try:
        data = strict_json(response.content)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        view = TwinView(data)
    except (ValueError, RecursionError) as exc:
        brief = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return Finding(CHECK, Status.WARN, f"{url}: unreadable twin ({brief[:200]})")
    if view.last_sequence > MAX_SEQUENCE:
        return Finding(
            CHECK,
            Status.FAIL,
            f"the cloud holds sequence {view.last_sequence} for this device, beyond"
            f" {MAX_SEQUENCE}: the agent sends nothing until that is reset (sync state"
            ' "diverged")',
            "on the cloud, remove the stray batch or reset the device's sequence; the"
            " agent resumes by itself",
        )
    return Finding(
        CHECK, Status.OK, f"the cloud accepts the token (last sequence {view.last_sequence})"
    )
