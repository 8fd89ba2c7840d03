"""The sync worker: drains the outbox to the cloud, exactly once (docs/sync.md).

One batch is in flight at a time. It is built from the outbox (alarm events first),
persisted in the store, and only then sent; it is resent byte for byte (same sequence)
until the cloud answers 200 (stored now, or a duplicate); then, in one transaction, its
outbox rows are deleted and the in-flight batch forgotten. A kill -9 at any point
therefore resends at most that one batch, and the cloud deduplicates it by sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from enum import StrEnum

from edge_agent.errors import TransientError
from edge_agent.http.status import SyncInfo
from edge_agent.store.meta import (
    ACKED_SEQUENCE_KEY,
    DESIRED_KEY,
    QUARANTINED_KEY,
    REJECTED_KEY,
    SEQUENCE_KEY,
)
from edge_agent.store.sqlite import Store
from edge_agent.store.sync_staging import InflightBatch
from edge_agent.sync.batching import BuiltBatch, build_batch
from edge_agent.sync.client import TwinView, check_sequence
from edge_agent.sync.config import SyncConfig
from edge_agent.sync.errors import (
    BatchOutOfOrder,
    BatchRejected,
    CloudSequenceOutOfRange,
    CloudUnauthorized,
)
from edge_agent.sync.transport import Transport, build_transport
from edge_agent.sync.twin import ReportedLedger, Twin
from edgetwin_common.retry import Backoff, Jitter
from edgetwin_contracts.batch import MAX_BATCH_BYTES, BatchAck, DesiredState, ReportedState

log = logging.getLogger(__name__)

MIN_ROW_BYTES = 120
"""Fewer JSON bytes than any outbox row: bounds how many rows one build reads."""
MAX_ROWS_READ = 20_000
MAX_CRASHES = 10
"""Consecutive unexpected errors (bugs) after which the state says ``failed``."""
FULL_ROW_LIMIT = 4096
"""After a split, the row limit doubles with each success; from here on it is lifted."""


class SyncState(StrEnum):
    DISABLED = "disabled"
    IDLE = "idle"
    """Up to date, or waiting for the next interval."""
    SENDING = "sending"
    BACKING_OFF = "backing_off"
    """The cloud was unreachable (or failed); retrying with exponential backoff."""
    UNAUTHORIZED = "unauthorized"
    """The cloud refuses the token: fix [sync] token; retried every backoff.max_s."""
    DIVERGED = "diverged"
    """The cloud reports a sequence for this device beyond MAX_SEQUENCE: nothing is
    sent; the twin is read every backoff.max_s and sending resumes by itself once the
    cloud reports a sequence in range (last_error says what to reset)."""
    FAILED = "failed"
    """The worker hit an unexpected error (a bug) MAX_CRASHES times in a row (see the
    log); it keeps trying every backoff.max_s and is back to idle after a success."""


class SyncWorker:
    """Sends the outbox to the cloud and applies the desired state it answers with.

    config: the [sync] section (enabled, with url and token). store: the agent's store
    (outbox, in-flight batch, meta). twin: reported/desired state. clock: UNIX seconds,
    injectable with ``rng`` (the backoff jitter) so tests count attempts per simulated
    minute, not per wall-clock one. client: the transport to use (default: the one
    config.transport names, created on the running loop: sync/transport.py).

    Drive it with ``run(stop)`` (the agent) or ``tick()`` (tests). Use on one event loop.
    """

    def __init__(
        self,
        config: SyncConfig,
        store: Store,
        twin: Twin,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        client: Transport | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._twin = twin
        self._clock = clock
        # Equal jitter: devices that lost the cloud together do not return in lockstep.
        self._backoff = Backoff(config.backoff, Jitter.EQUAL, rng)
        self._client = client
        self.state = SyncState.IDLE
        self.attempts = 0
        """Requests made (POSTs and twin reads) since start."""
        self.batches_sent = 0
        self.duplicates = 0
        self.rejected = 0
        self.failures = 0
        """Consecutive failures (the backoff exponent); 0 after a success."""
        self.last_success_ts: float | None = None
        self.last_attempt_ts: float | None = None
        self.last_error: str | None = None
        self.last_error_ts: float | None = None
        self._next_at = 0.0
        self._send_full = True
        """The next batch built carries the reported state even if unchanged: after
        start and after every reconnect."""
        self._reported = ReportedLedger()
        self._acked_reported_version = 0
        self._more = False
        """The last build left rows in the outbox: send the next batch without waiting."""
        self._row_limit: int | None = None
        """Set after a rejection: rows per batch while the refused row is searched for."""
        self._suspect: tuple[int, str] | None = None
        """A row the cloud refused alone (id, reason), quarantined once a batch without
        rows (the probe) is accepted: then the row, not the envelope, was the problem."""

    # -- driving -------------------------------------------------------------------

    @property
    def interval_s(self) -> float:
        """Seconds between sends: the cloud's desired sync_interval_s, else [sync]."""
        return self._twin.outcome.sync_interval_s or self.config.interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set, sleeping as ``tick`` asks (the stop event ends
        a sleep at once). A batch in flight when stopped stays staged and is resent at
        the next start."""
        log.info("cloud sync started", extra={"url": self.config.url})
        crashes = 0
        try:
            while not stop.is_set():
                try:
                    delay = await self.tick()
                    crashes = 0
                except Exception as exc:
                    # A bug, not the cloud or the store (tick handles those): logged with
                    # its traceback and retried slowly, never given up: whatever the
                    # cloud answered may be different next time.
                    crashes += 1
                    self._error(f"internal error: {exc!r}")
                    if crashes <= MAX_CRASHES:  # then quiet: the state says it
                        log.exception("sync worker error (%d in a row)", crashes)
                    if crashes >= MAX_CRASHES:
                        self.state = SyncState.FAILED
                    delay = self.config.backoff.max_s
                    self._next_at = self._clock() + delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(delay, 0.0))
        finally:
            await self.aclose()

    async def tick(self) -> float:
        """Make one attempt if one is due (a batch sent, or the twin read when there is
        nothing to send); returns the seconds until the next is due (0: at once).

        Never raises for the cloud or the store being unavailable, a refused token or a
        refused batch: those set ``state`` and the backoff."""
        now = self._clock()
        if now < self._next_at:
            return self._next_at - now
        try:
            delay = await self._attempt()
        except CloudUnauthorized as exc:
            delay = self._unauthorized(exc)
        except CloudSequenceOutOfRange as exc:
            delay = self._out_of_range(exc)
        except (TransientError, OSError) as exc:
            # CloudUnavailable, StoreUnavailable: the same batch is retried later.
            delay = self._failed(exc)
        self._next_at = self._clock() + delay
        return delay

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _cloud(self) -> Transport:
        if self._client is None:
            # A transport that pushes the desired state (MQTT) applies it on arrival.
            self._client = build_transport(self.config, self._receive)
        return self._client

    # -- one attempt ---------------------------------------------------------------

    async def _attempt(self) -> float:
        store = self._store
        if self.state is SyncState.DIVERGED:
            # Send nothing until the cloud reports a sequence in range again.
            self.attempts += 1
            self.last_attempt_ts = self._clock()
            view = await self._cloud().get_twin()
            check_sequence(view.last_sequence)
            log.info(
                "the cloud reports sequence %d for this device again: sync resumes",
                view.last_sequence,
            )
            self.state = SyncState.IDLE
            self._send_full = True
        inflight = await asyncio.to_thread(store.sync_inflight)
        if inflight is None:
            inflight = await self._build()
            if inflight is None:
                return await self._poll_twin()
        self.state = SyncState.SENDING
        self.attempts += 1
        self.last_attempt_ts = self._clock()
        try:
            ack = await self._cloud().post_batch(inflight.sequence, inflight.body)
        except BatchRejected as exc:
            return await self._rejected(inflight, exc)
        except BatchOutOfOrder as exc:
            return await self._out_of_order(inflight, exc)
        return await self._acknowledged(inflight, ack)

    async def _build(self) -> InflightBatch | None:
        """Build and stage the next batch; None when there is nothing to send."""
        store = self._store
        limit = min(MAX_ROWS_READ, self.config.max_batch_bytes // MIN_ROW_BYTES)
        if self._row_limit is not None:
            limit = min(limit, self._row_limit)
        rows = await asyncio.to_thread(store.outbox_pending, limit) if limit > 0 else []
        probe = limit == 0
        counters = await asyncio.to_thread(self._counters)
        reported: ReportedState | None = self._twin.reported(counters)
        digest = self._twin.reported_hash
        material = self._twin.material_hash
        due = self._reported.due(digest, material, self._clock(), self.config.reported_live_s)
        if not (self._send_full or probe or due):
            reported = None
        self._more = False
        if not rows and reported is None:
            return None
        sequence = await self._next_sequence()
        built: BuiltBatch = await asyncio.to_thread(
            build_batch,
            sequence,
            self._clock(),
            rows,
            reported,
            max_json_bytes=self.config.max_batch_bytes,
            max_gzip_bytes=MAX_BATCH_BYTES,
        )
        self._more = len(rows) == limit or len(rows) > built.rows + len(built.refused)
        if built.refused:
            for row_id, reason in built.refused:
                log.error("outbox row %d can never be sent, quarantined: %s", row_id, reason)
            await asyncio.to_thread(
                store.sync_quarantine, [i for i, _ in built.refused], "device: invalid row"
            )
            self._more = True
        if built.rows == 0 and reported is None:
            return None
        staged = self._reported.stage(digest, material, reported is not None)
        await asyncio.to_thread(store.sync_stage, built.batch, staged)
        return built.batch

    async def _next_sequence(self) -> int:
        last = await asyncio.to_thread(self._store.meta_int, SEQUENCE_KEY, -1)
        if last < 0:
            # This store never sent anything, but the device may have (a replaced SD
            # card, a re-installed agent): reusing a sequence the cloud stored would be
            # answered "duplicate" and its rows lost. Start above the cloud's last.
            self.attempts += 1
            self.last_attempt_ts = self._clock()
            view = await self._cloud().get_twin()
            last = check_sequence(view.last_sequence)
            if last:
                log.warning("new store: continuing after the cloud's sequence %d", last)
            await asyncio.to_thread(self._store.set_meta_int, SEQUENCE_KEY, last)
        # This store itself at the bound: only reachable by following a cloud that was
        # out of range before the bound existed.
        return check_sequence(last + 1)

    async def _acknowledged(self, inflight: InflightBatch, ack: BatchAck) -> float:
        await asyncio.to_thread(self._store.sync_commit, inflight.sequence)
        self.batches_sent += 1
        if ack.duplicate:
            self.duplicates += 1
        self._succeeded()
        if inflight.reported_version is not None:
            if inflight.reported_version == self._twin.reported_version:
                self._reported.acknowledged(self._clock())
            self._acked_reported_version = inflight.reported_version
            self._send_full = False
        if self._suspect is not None and not inflight.row_ids:
            # The probe got through: the envelope is fine, so the row itself was refused.
            row_id, reason = self._suspect
            log.error("cloud refuses outbox row %d on its own, quarantined: %s", row_id, reason)
            await asyncio.to_thread(self._store.sync_quarantine, [row_id], f"cloud: {reason}")
            self._suspect = None
            self._row_limit = None
        elif self._row_limit == 0:
            self._row_limit = None  # an envelope probe got through: back to full batches
        elif self._row_limit is not None:
            self._row_limit *= 2
            if self._row_limit >= FULL_ROW_LIMIT:
                self._row_limit = None
        changed = await self._receive(ack.desired)
        return 0.0 if (self._more or changed or self._send_full) else self.interval_s

    async def _poll_twin(self) -> float:
        """Nothing to send: read the twin instead, so a desired change still arrives, and
        notice a cloud that lost the reported state."""
        self.attempts += 1
        self.last_attempt_ts = self._clock()
        view = await self._cloud().get_twin()
        self._succeeded()
        if view.reported_version < self._acked_reported_version:
            log.warning(
                "the cloud holds reported version %d, older than the %d it acknowledged:"
                " sending the full state",
                view.reported_version,
                self._acked_reported_version,
            )
            self._send_full = True
        changed = await self._receive(view.desired)
        return 0.0 if (changed or self._send_full) else self.interval_s

    async def _receive(self, desired: DesiredState) -> bool:
        """Persist and apply a desired state if it is new; whether it was."""
        if not self._twin.is_new(desired):
            return False
        await asyncio.to_thread(self._store.set_meta_text, DESIRED_KEY, desired.model_dump_json())
        self._twin.apply(desired)
        return True

    # -- outcomes ------------------------------------------------------------------

    def _succeeded(self) -> None:
        if self.state in (SyncState.BACKING_OFF, SyncState.UNAUTHORIZED):
            log.info(
                "cloud sync recovered",
                extra={"after_failures": self.failures, "was": self.state.value},
            )
            self._send_full = True  # a reconnect: reconcile the whole twin
        self.failures = 0
        self.state = SyncState.IDLE
        self.last_success_ts = self._clock()

    def _failed(self, exc: BaseException) -> float:
        self.failures += 1
        self._error(str(exc) or type(exc).__name__)
        if self.state is not SyncState.BACKING_OFF:
            log.warning("cloud sync failing, backing off: %s", exc)
        self.state = SyncState.BACKING_OFF
        self._send_full = True
        return self._backoff.delay(self.failures)

    def _unauthorized(self, exc: CloudUnauthorized) -> float:
        self.failures += 1
        self._error(f"unauthorized: {exc}")
        if self.state is not SyncState.UNAUTHORIZED:
            log.error(
                "the cloud refuses this device's token (%s): fix [sync] token;"
                " retrying every %.0f s",
                exc,
                self.config.backoff.max_s,
            )
        self.state = SyncState.UNAUTHORIZED
        self._send_full = True
        return self.config.backoff.max_s

    async def _rejected(self, inflight: InflightBatch, exc: BatchRejected) -> float:
        """The cloud stored nothing and never will for these bytes: drop the batch (its
        rows stay queued, its sequence is not reused) and narrow down the culprit."""
        self.rejected += 1
        await asyncio.to_thread(self._discard_rejected, inflight.sequence)
        n = len(inflight.row_ids)
        self._error(f"batch {inflight.sequence} ({n} rows) rejected: {exc}")
        log.warning(
            "cloud rejected batch %d (%d rows): HTTP %d: %s",
            inflight.sequence,
            n,
            exc.status,
            exc.detail,
        )
        self.state = SyncState.IDLE
        if n >= 2:
            self._row_limit = n // 2
            return 0.0
        if n == 1 and self._suspect is None:
            self._suspect = (inflight.row_ids[0], f"HTTP {exc.status}: {exc.detail}")
            self._row_limit = 0  # next: the probe, a batch with no rows
            return 0.0
        # A batch without rows refused: the envelope (clock, reported state, agent
        # version) is the problem, not a row. Quarantining rows would not help.
        log.error(
            "the cloud refuses even a batch without rows (HTTP %d: %s): check the device"
            " clock and agent version; retrying every %.0f s",
            exc.status,
            exc.detail,
            self.config.backoff.max_s,
        )
        self._suspect = None
        self._row_limit = 0  # retry with the probe alone until it is accepted
        self.state = SyncState.BACKING_OFF
        self.failures += 1
        return self.config.backoff.max_s

    async def _out_of_order(self, inflight: InflightBatch, exc: BatchOutOfOrder) -> float:
        """409: the cloud has higher sequences than this device remembers (its store was
        replaced). Jump past the cloud's last sequence and rebuild (the rows were never
        stored by the cloud: it never saw this sequence). Raises CloudSequenceOutOfRange
        (nothing changed) when the cloud's last sequence is beyond MAX_SEQUENCE."""
        view: TwinView = await self._cloud().get_twin()
        cloud = check_sequence(view.last_sequence)
        if cloud <= inflight.sequence:
            # A 409 that the cloud's own twin contradicts: keep the batch staged and
            # resend it later; jumping would not make the next answer different.
            return self._failed(
                BatchOutOfOrder(
                    f"{exc}, yet the cloud's last sequence is {cloud} (sent"
                    f" {inflight.sequence}): resending later"
                )
            )
        store = self._store
        ours = await asyncio.to_thread(store.meta_int, SEQUENCE_KEY)
        await asyncio.to_thread(store.sync_discard, inflight.sequence)
        await asyncio.to_thread(store.set_meta_int, SEQUENCE_KEY, max(ours, cloud))
        log.warning(
            "cloud is at sequence %d, this device at %d (%s): continuing from %d",
            cloud,
            inflight.sequence,
            exc,
            max(ours, cloud) + 1,
        )
        self._error(f"out of order: {exc}")
        return 0.0

    def _out_of_range(self, exc: CloudSequenceOutOfRange) -> float:
        self._error(str(exc))
        if self.state is not SyncState.DIVERGED:
            log.error(
                "%s; sending nothing, reading the twin every %.0f s",
                exc,
                self.config.backoff.max_s,
            )
        self.state = SyncState.DIVERGED
        return self.config.backoff.max_s

    def _discard_rejected(self, sequence: int) -> None:
        self._store.sync_discard(sequence)
        self._store.set_meta_int(REJECTED_KEY, self._store.meta_int(REJECTED_KEY) + 1)

    def _error(self, message: str) -> None:
        self.last_error = message
        self.last_error_ts = self._clock()

    def _counters(self) -> dict[str, int]:
        """Sync counters for the reported state: only ones that change on trouble, so an
        idle device's reported state stays unchanged."""
        store = self._store
        return {
            "outbox_dropped_summaries": store.outbox_dropped_total(),
            "sync_rejected_batches": store.meta_int(REJECTED_KEY),
            "sync_quarantined_rows": store.meta_int(QUARANTINED_KEY),
        }

    # -- view ----------------------------------------------------------------------

    def status(self) -> SyncInfo:
        stats = self._store.stats()
        inflight = self._store.sync_inflight()
        now = self._clock()
        return SyncInfo(
            enabled=True,
            state=self.state.value,
            last_success_ts=self.last_success_ts,
            last_attempt_ts=self.last_attempt_ts,
            last_error=self.last_error,
            last_error_ts=self.last_error_ts,
            backlog=dict(stats.outbox_rows),
            in_flight=None if inflight is None else inflight.sequence,
            batches_sent=self.batches_sent,
            duplicates=self.duplicates,
            rejected=self.rejected,
            quarantined=self._store.meta_int(QUARANTINED_KEY),
            consecutive_failures=self.failures,
            next_attempt_in_s=max(0.0, self._next_at - now),
            last_sequence=self._store.meta_int(ACKED_SEQUENCE_KEY),
            desired_version=self._twin.outcome.version,
            reported_version=self._twin.reported_version,
            interval_s=self.interval_s,
        )
