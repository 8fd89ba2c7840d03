"""A small but faithful reference cloud for the sync worker's tests.

It implements the contract in edgetwin_contracts/batch.py and docs/sync.md with an
in-memory dict: POST /v1/batches (bearer token, gzip JSON Batch; 200 BatchAck with
duplicate and desired; 409 for a never-seen sequence below the highest stored; 400
malformed, 401 bad token, 413 too large, 415 not gzip, 422 schema or clock skew) and
GET /v1/twin. It records every request and can be told to misbehave: answer 503 or 401,
drop the connection mid-answer, delay, reject batches by a predicate, or hold the answer
to one sequence (before or after storing it) until released, which lets a test SIGKILL
the device between "the cloud has it" and "the device knows".

Run by real uvicorn on 127.0.0.1, port 0, in a thread: ``with cloud.serve() as url``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from edgetwin_contracts.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_DECOMPRESSED_BYTES,
    Batch,
    BatchAck,
    DesiredState,
    ReportedState,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class Fault(StrEnum):
    NONE = "none"
    UNAVAILABLE = "unavailable"
    """Answer 503."""
    UNAUTHORIZED = "unauthorized"
    """Answer 401 whatever the token."""
    DROP = "drop"
    """Read the request, start a 200 answer, then close the connection (nothing stored)."""
    DROP_AFTER = "drop_after"
    """Handle the request (a batch is stored), then lose the answer: close the connection."""
    DELAY = "delay"
    """Wait delay_s, then answer normally."""


@dataclass(frozen=True, slots=True)
class Received:
    """One request to POST /v1/batches as the cloud saw it."""

    status: int
    body: bytes
    sequence: int | None = None
    duplicate: bool = False
    batch: Batch | None = None
    detail: str = ""


class FakeCloud:
    """One device's view of the cloud (any other token is refused)."""

    def __init__(self, token: str = "device-token", device: str = "device-1") -> None:
        self.token = token
        self.device = device
        self.url = ""
        """Set by ``serve``."""
        self.desired = DesiredState()
        self.max_future_skew_s: float | None = None
        """Refuse (422) batches created further than this ahead of the cloud's clock."""
        self.reject: Callable[[Batch], str | None] | None = None
        """Refuse (422, with the returned detail) batches for which this returns text."""
        self.delay_s = 0.0
        self._fault = Fault.NONE
        self._fault_left: int | None = None
        self._fault_path: str | None = None
        self._lock = threading.Lock()
        self.stored: dict[int, Batch] = {}
        self.bodies: dict[int, bytes] = {}
        self.received: list[Received] = []
        self.faulted = 0
        self.twin_reads = 0
        self.mismatched_resends = 0
        """Duplicates whose bytes differ from the stored batch (must stay 0)."""
        self.reported: ReportedState | None = None
        self.last_seen: float | None = None
        self.held = threading.Event()
        """Set when the held sequence has arrived (and, for after_store, is stored)."""
        self._release = threading.Event()
        self._hold: tuple[int, bool] | None = None
        self._abandon = False
        self.app = self._build_app()

    # -- steering ------------------------------------------------------------------

    def fail(
        self,
        fault: Fault,
        times: int | None = None,
        delay_s: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Misbehave for the next ``times`` requests (None: until ``fail(Fault.NONE)``),
        to ``path`` only if given (e.g. "/v1/batches")."""
        with self._lock:
            self._fault = fault
            self._fault_left = times
            self._fault_path = path
            self.delay_s = delay_s

    def store_unchecked(self, sequence: int) -> None:
        """Hold ``sequence`` as stored, bypassing the contract's bounds: what a cloud from
        before the bound (docs/sync.md, "Sequences out of range") kept when anyone holding
        the device's token posted it."""
        batch = Batch.model_construct(sequence=sequence, created_at=time.time(), summaries=[])
        with self._lock:
            self.stored[sequence] = batch
            self.bodies[sequence] = b""

    def hold(self, sequence: int, after_store: bool) -> None:
        """Hold the answer to the first request carrying ``sequence`` until ``release``;
        ``held`` is set when it arrives (after storing it, if after_store)."""
        self.held.clear()
        self._release.clear()
        self._hold = (sequence, after_store)

    def release(self, abandon: bool = False) -> None:
        """Let the held request go on; ``abandon``: it then fails (503) without storing,
        as when the cloud's own processing dies (only meaningful before storing)."""
        self._abandon = abandon
        self._release.set()

    def _take_fault(self, path: str) -> Fault:
        with self._lock:
            fault = self._fault
            if fault is Fault.NONE or self._fault_path not in (None, path):
                return Fault.NONE
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._fault, self._fault_left = Fault.NONE, None
            self.faulted += 1
            return fault

    # -- views for assertions ------------------------------------------------------

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.received]

    def duplicates(self) -> list[int]:
        with self._lock:
            return [r.sequence for r in self.received if r.duplicate and r.sequence]

    def stored_batches(self) -> list[Batch]:
        with self._lock:
            return [self.stored[s] for s in sorted(self.stored)]

    def stored_summaries(self) -> list[tuple[str, float]]:
        return [(s.channel, s.start) for b in self.stored_batches() for s in b.summaries]

    def stored_alarm_events(self) -> list[tuple[int, str, float]]:
        return [(e.alarm.id, e.kind, e.ts) for b in self.stored_batches() for e in b.alarms]

    # -- the app -------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="fake edgetwin cloud")

        @app.post("/v1/batches")
        async def post_batch(request: Request) -> JSONResponse:
            return await self._post_batch(request)

        @app.get("/v1/twin")
        async def twin(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _error(401, "bad token")
            with self._lock:
                self.twin_reads += 1
                last = max(self.stored, default=0)
                reported = self.reported
            return JSONResponse(
                {
                    "device": self.device,
                    "reported": None if reported is None else reported.model_dump(mode="json"),
                    "reported_version": 0 if reported is None else reported.version,
                    "desired": self.desired.model_dump(mode="json"),
                    "desired_version": self.desired.version,
                    "last_seen": self.last_seen,
                    "last_sequence": last,
                }
            )

        app.add_middleware(_Faults, cloud=self)  # type: ignore[arg-type]
        return app

    def _record(self, received: Received) -> JSONResponse:
        with self._lock:
            self.received.append(received)
        if received.status == 200:
            assert received.sequence is not None
            ack = BatchAck(
                sequence=received.sequence, duplicate=received.duplicate, desired=self.desired
            )
            return JSONResponse(ack.model_dump(mode="json"))
        return _error(received.status, received.detail)

    async def _post_batch(self, request: Request) -> JSONResponse:
        raw = await request.body()
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._record(Received(401, raw, detail="bad token"))
        if request.headers.get("content-encoding") != "gzip":
            return self._record(Received(415, raw, detail="Content-Encoding must be gzip"))
        if len(raw) > MAX_BATCH_BYTES:
            return self._record(Received(413, raw, detail=f"{len(raw)} bytes compressed"))
        try:
            inflater = zlib.decompressobj(wbits=31)
            text = inflater.decompress(raw, MAX_BATCH_DECOMPRESSED_BYTES + 1)
            if len(text) > MAX_BATCH_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
                return self._record(Received(413, raw, detail="too large decompressed"))
            data = json.loads(text)
        except (zlib.error, ValueError) as exc:
            return self._record(Received(400, raw, detail=f"malformed: {exc}"))
        try:
            batch = Batch.model_validate(data)
        except ValidationError as exc:
            return self._record(Received(422, raw, detail=str(exc.errors()[:3])))
        seq = batch.sequence
        hold = self._hold if self._hold is not None and self._hold[0] == seq else None
        if hold is not None:
            self._hold = None
        with self._lock:
            self.last_seen = time.time()
            if seq in self.stored:
                if self.bodies[seq] != raw:
                    self.mismatched_resends += 1
                duplicate = True
            elif self.stored and seq < max(self.stored):
                duplicate = False
                detail = f"sequence {seq} < highest stored {max(self.stored)}"
                self.received.append(Received(409, raw, seq, detail=detail))
                return _error(409, detail)
            else:
                duplicate = False
        if not duplicate:
            skew = self.max_future_skew_s
            if skew is not None and batch.created_at > time.time() + skew:
                return self._record(Received(422, raw, seq, detail="clock skew: created_at"))
            reason = self.reject(batch) if self.reject is not None else None
            if reason is not None:
                return self._record(Received(422, raw, seq, detail=reason))
        if hold is not None and not hold[1]:
            await self._wait_release()
            if self._abandon:
                return self._record(Received(503, raw, seq, detail="abandoned"))
        if not duplicate:
            with self._lock:
                self.stored[seq] = batch
                self.bodies[seq] = raw
                if batch.reported is not None and (
                    self.reported is None or batch.reported.version >= self.reported.version
                ):
                    self.reported = batch.reported
        if hold is not None and hold[1]:
            await self._wait_release()
        return self._record(Received(200, raw, seq, duplicate, batch))

    async def _wait_release(self) -> None:
        self.held.set()
        await asyncio.to_thread(self._release.wait, 60)

    # -- serving -------------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run on 127.0.0.1 (a free port) in a thread; yields the base URL."""
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="fakecloud", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "fake cloud failed to start"
            assert time.monotonic() < deadline, "fake cloud did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self.url
        finally:
            self._release.set()
            server.should_exit = True
            thread.join(10)


class _Faults:
    """Pure ASGI middleware: the steerable faults, before the app sees the request."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any], cloud: FakeCloud) -> None:
        self.app = app
        self.cloud = cloud

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.cloud._take_fault(scope["path"])
        if fault is Fault.NONE:
            await self.app(scope, receive, send)
            return
        if fault is Fault.DROP_AFTER:

            async def lose(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await _start_partial(send)
                else:
                    raise ConnectionAbortedError("fake cloud loses the answer")

            await self.app(scope, receive, lose)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if fault is Fault.DELAY:
            await asyncio.sleep(self.cloud.delay_s)
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def again() -> Message:
                return replay.pop() if replay else {"type": "http.disconnect"}

            await self.app(scope, again, send)
            return
        if fault is Fault.DROP:
            with self.cloud._lock:
                self.cloud.received.append(Received(0, body, detail="dropped"))
            await _start_partial(send)
            raise ConnectionAbortedError("fake cloud drops the connection")
        status = 503 if fault is Fault.UNAVAILABLE else 401
        with self.cloud._lock:
            self.cloud.received.append(Received(status, body, detail=str(fault)))
        response = _error(status, f"fake cloud: {fault.value}")
        await response(scope, receive, send)


async def _start_partial(send: Send) -> None:
    """A 200 whose body never completes: the client sees the connection drop."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"999")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"seq', "more_body": True})


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def gunzip(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(body))
    return data
