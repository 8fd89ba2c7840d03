"""One notification pass: note which conditions were raised or cleared since the last
pass, queue one webhook call per change and target, and send what is due.

Exactly once per change, across replicas: the pass that notes changes runs under a lock
(PostgreSQL: a transaction-level advisory lock; SQLite: the process's write lock and
``BEGIN IMMEDIATE``), and a call is claimed before it is sent (its next attempt moved
past the timeout in a compare-and-set), so two replicas never send the same call at
once. A call is forgotten only when the receiver answers 2xx; until then it is retried
with backoff (edgetwin_common.retry), each time with the same ``Idempotency-Key``
header, so a receiver drops the duplicate a lost answer can cause.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, insert, or_, select, text, update

from cloud_sync.config import CloudConfig
from cloud_sync.db.models import Notification, NotificationDelivery
from cloud_sync.db.session import read_connection, write_lock
from cloud_sync.notifications.conditions import Condition, current_conditions
from edgetwin_common.retry import Backoff, Jitter

log = logging.getLogger(__name__)

_ADVISORY_LOCK = 0x6E6F7469  # "noti": one notification pass at a time across replicas
_BATCH = 100
"""Calls sent per pass at most (the rest wait for the next pass)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A condition raised or cleared."""

    event: str
    """raised, cleared."""
    key: str
    kind: str
    raised_at: float
    cleared_at: float | None
    detail: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this change, different for the next episode."""
        text = f"{self.key}\n{self.event}\n{self.raised_at!r}"
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "kind": self.kind,
            "key": self.key,
            "message": ("cleared: " if self.event == "cleared" else "")
            + str(self.detail.get("message", "")),
            "raised_at": self.raised_at,
            "cleared_at": self.cleared_at,
            "detail": self.detail,
        }


@dataclass(slots=True)
class PassResult:
    changes: list[Change] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0


class NotificationPass:
    """``run()`` is one pass; ``serve`` runs it every [notifications] check_interval_s.
    ``client``: the HTTP client to send with (default: one of its own)."""

    def __init__(
        self,
        engine: Engine,
        config: CloudConfig,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.section = config.notifications
        self.stale_after_s = config.fleet.stale_after_s
        self._headers = {t.url: t.headers for t in self.section.webhooks}
        self._client = client or httpx.Client(timeout=self.section.timeout_s)
        self._backoff = Backoff(self.section.backoff, Jitter.EQUAL, rng)

    def run(self, now: float | None = None) -> PassResult:
        """Note changes at ``now`` (UNIX s; default: the clock), then send what is due."""
        now = time.time() if now is None else now
        result = PassResult(changes=self.track(now))
        result.delivered, result.failed = self.deliver(now)
        return result

    def track(self, now: float) -> list[Change]:
        """Record the conditions raised and cleared since the last pass, and queue one call
        per change and webhook. Returns the changes."""
        with write_lock(self.engine), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            current = current_conditions(
                conn,
                now,
                stale_after_s=self.stale_after_s,
                events=self.section.events,
                alarm_severities=self.section.alarm_severities,
            )
            changes = _changes(conn, current, now)
            for change in changes:
                for url in self._headers:
                    conn.execute(
                        insert(NotificationDelivery).values(
                            idempotency_key=change.idempotency_key,
                            url=url,
                            payload=change.payload(),
                            attempts=0,
                            next_attempt_at=now,
                            delivered_at=None,
                            last_error=None,
                        )
                    )
        for change in changes:
            log.info("notification %s %s", change.event, change.key)
        return changes

    def deliver(self, now: float) -> tuple[int, int]:
        """Send the calls due at ``now``; returns (delivered, failed)."""
        with read_connection(self.engine) as conn:
            due = conn.execute(
                select(NotificationDelivery.__table__)
                .where(
                    NotificationDelivery.delivered_at.is_(None),
                    NotificationDelivery.next_attempt_at <= now,
                )
                .order_by(NotificationDelivery.id)
                .limit(_BATCH)
            ).all()
        delivered = failed = 0
        for call in due:
            if not self._claim(call.id, call.next_attempt_at, now):
                continue  # another replica is sending it
            error = self._send(call.url, call.idempotency_key, call.payload)
            self._record(call.id, call.attempts + 1, error, now)
            if error is None:
                delivered += 1
            else:
                failed += 1
        return delivered, failed

    def _claim(self, call_id: int, next_attempt_at: float, now: float) -> bool:
        lease = now + self.section.timeout_s + 1.0
        with write_lock(self.engine), self.engine.begin() as conn:
            claimed = conn.execute(
                update(NotificationDelivery)
                .where(
                    NotificationDelivery.id == call_id,
                    NotificationDelivery.next_attempt_at == next_attempt_at,
                    NotificationDelivery.delivered_at.is_(None),
                )
                .values(next_attempt_at=lease)
            )
        return claimed.rowcount == 1

    def _send(self, url: str, key: str, payload: dict[str, Any]) -> str | None:
        """None when the receiver accepted the call (2xx), else what went wrong."""
        headers = {**self._headers.get(url, {}), "Idempotency-Key": key}
        try:
            response = self._client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:1000]
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    def _record(self, call_id: int, attempts: int, error: str | None, now: float) -> None:
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            values["next_attempt_at"] = now + self._backoff.delay(attempts)
            log.warning("notification call %d failed (attempt %d): %s", call_id, attempts, error)
        with write_lock(self.engine), self.engine.begin() as conn:
            conn.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == call_id)
                .values(**values)
            )


def _changes(conn: Connection, current: dict[str, Condition], now: float) -> list[Change]:
    """Apply ``current`` to the notifications table; the raised and cleared changes."""
    rows = {
        row.key: row
        for row in conn.execute(
            select(Notification.__table__).where(
                or_(Notification.cleared_at.is_(None), Notification.key.in_(list(current)))
            )
        )
    }
    changes = []
    for key, condition in current.items():
        row = rows.get(key)
        if row is not None and row.cleared_at is None:
            continue
        detail = {**condition.detail, "message": condition.message}
        if row is None:
            conn.execute(
                insert(Notification).values(
                    key=key, kind=condition.kind, raised_at=now, cleared_at=None, detail=detail
                )
            )
        else:
            conn.execute(
                update(Notification)
                .where(Notification.key == key)
                .values(raised_at=now, cleared_at=None, detail=detail)
            )
        changes.append(Change("raised", key, condition.kind, now, None, detail))
    for key, row in rows.items():
        if row.cleared_at is None and key not in current:
            conn.execute(update(Notification).where(Notification.key == key).values(cleared_at=now))
            changes.append(Change("cleared", key, row.kind, row.raised_at, now, row.detail))
    return changes
