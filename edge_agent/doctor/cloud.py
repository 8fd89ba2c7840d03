"""Cloud reachability: the sync URL answers /health."""

from __future__ import annotations

import httpx

from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "cloud"
TIMEOUT_S = 5.0


def check(context: DoctorContext) -> list[Finding]:
    sync = context.loaded.config.sync
    if not sync.enabled:
        return [Finding(CHECK, Status.SKIP, "sync is disabled ([sync] enabled = false)")]
    if not sync.url:  # transport = "mqtt" without an HTTP URL (docs/mqtt.md)
        return [Finding(CHECK, Status.SKIP, "sync goes through the MQTT broker; no url to check")]
    url = sync.url.rstrip("/") + "/health"
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
    return [Finding(CHECK, Status.OK, f"{url} answers")]
