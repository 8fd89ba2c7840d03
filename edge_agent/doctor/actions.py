"""Alarm outputs: does the control room get the alarms? Each webhook's host must
resolve and accept a connection; and when the agent is running, its own record of
each action (from its /status: the last error, events given up or dropped) is read."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from edge_agent.actions.webhook import WebhookActionConfig
from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "actions"
TIMEOUT_S = 3.0


def check(context: DoctorContext) -> list[Finding]:
    config = context.loaded.config
    findings = [
        _reachable(name, action)
        for name, action in config.actions_by_name().items()
        if isinstance(action, WebhookActionConfig)
    ]
    host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::", "") else config.http.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if config.http.enabled:
        findings.extend(_running_agent(f"http://{host}:{config.http.port}/status"))
    if not findings:
        findings.append(Finding(CHECK, Status.OK, "only the log action: nothing to reach"))
    return findings


def _reachable(name: str, action: WebhookActionConfig) -> Finding:
    """A TCP connection to the webhook's host and port (no request: a test POST would
    reach the control room as an alarm)."""
    url = action.url
    host = url.host or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return Finding(
            CHECK,
            Status.FAIL,
            f"{name}: cannot connect to {host}:{port} ({reason}): alarms will not reach {url}",
            f"check [[actions]] {name!r} url, DNS (getent hosts {host}) and the firewall",
        )
    return Finding(CHECK, Status.OK, f"{name}: {host}:{port} accepts connections")


def _running_agent(url: str) -> list[Finding]:
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
        actions: list[dict[str, Any]] = response.json().get("actions", [])
    except (httpx.HTTPError, ValueError) as exc:
        message = (
            f"no running agent answers {url} ({type(exc).__name__}): delivery history not read"
        )
        return [Finding(CHECK, Status.SKIP, message)]
    return [_delivery(a) for a in actions]


def _delivery(action: dict[str, Any]) -> Finding:
    name = f"{action['name']} ({action['type']})"
    if action.get("is_failing"):
        return Finding(
            CHECK,
            Status.FAIL,
            f"{name}: the last delivery failed: {action.get('last_error')}; "
            f"{action.get('failed', 0)} event(s) given up, {action.get('queue_depth', 0)} queued",
            "fix the receiver or the action's url; the status page's Alarm outputs card "
            "and /metrics edge_action_failing show when it recovers",
        )
    if action.get("dropped"):
        return Finding(
            CHECK,
            Status.WARN,
            f"{name}: {action['dropped']} event(s) dropped (queue full or shutdown)",
            "raise the action's queue_max, or find why the receiver is slow",
        )
    if action.get("last_success") is None:
        return Finding(CHECK, Status.OK, f"{name}: nothing delivered yet, no error")
    return Finding(CHECK, Status.OK, f"{name}: delivering")
