"""WebhookAction against a real HTTP server (uvicorn on 127.0.0.1): retries, give-up,
queue overflow, draining on stop, and a notify that never waits for the network."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.webhook import WebhookAction, WebhookActionConfig
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity
from edgetwin_common.testing import wait_until_async


@dataclass
class Receiver:
    """What the test server does and what it saw."""

    fail_first: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    hold: threading.Event = field(default_factory=threading.Event)
    """While clear, every request waits (a hung receiver). Set: answer at once."""
    hang_alarm: int | None = None
    """With hold clear: only the requests about this alarm wait (None: all)."""
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class Server:
    def __init__(self) -> None:
        self.receiver = Receiver()
        self.receiver.hold.set()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def _hook(self, request: Request) -> Response:
        r = self.receiver
        r.requests += 1
        seen = r.requests
        body = await request.json()
        hangs = r.hang_alarm is None or body["alarm"]["id"] == r.hang_alarm
        while hangs and not r.hold.is_set():
            await asyncio.sleep(0.01)
        if seen <= r.fail_first:
            headers = {"Retry-After": r.retry_after} if r.retry_after is not None else None
            return Response(status_code=r.fail_status, headers=headers)
        r.bodies.append(body)
        r.keys.append(request.headers["idempotency-key"])
        return JSONResponse({"ok": True})

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started:
            assert time.monotonic() < deadline, "test server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.receiver.hold.set()
        self._server.should_exit = True
        self._thread.join(timeout=10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def receiver(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    server.receiver = Receiver()
    server.receiver.hold.set()
    yield server.receiver
    server.receiver.hold.set()


def hook(url: str, **overrides: Any) -> WebhookAction:
    settings: dict[str, Any] = {
        "type": "webhook",
        "name": "ops",
        "url": url,
        "timeout_s": 5.0,
        "retries": 5,
        "backoff": {"initial_s": 0.01, "max_s": 0.05},
        **overrides,
    }
    return WebhookAction(WebhookActionConfig.model_validate(settings))


def event(alarm_id: int, kind: AlarmEventKind = AlarmEventKind.RAISED) -> AlarmEvent:
    alarm = Alarm(
        id=alarm_id,
        rule="bearing-hot",
        channel="bearing",
        kind="value_above",
        severity=Severity.CRITICAL,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        raised_at=1_700_000_000.5,
        value=87.25,
        message="bearing 87.25 >= 85",
    )
    return AlarmEvent(kind, 1_700_000_000.5, alarm)


def test_retries_until_the_receiver_accepts(server: Server, receiver: Receiver) -> None:
    receiver.fail_first = 2
    action = hook(server.url)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        await wait_until_async(lambda: action.counters["sent"] == 1)
        await action.stop()

    asyncio.run(main())
    assert receiver.requests == 3
    assert receiver.bodies == [event(1).to_dict()]
    assert receiver.keys == ["1-raised"]
    assert action.counters == {"queued": 1, "sent": 1, "retried": 2, "failed": 0, "dropped": 0}


def test_gives_up_after_the_retries_and_goes_on_with_the_next_event(
    server: Server, receiver: Receiver
) -> None:
    receiver.fail_first = 3
    action = hook(server.url, retries=2)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        action.notify(event(1, AlarmEventKind.CLEARED))
        await wait_until_async(lambda: action.counters["sent"] + action.counters["failed"] == 2)
        await action.stop()

    asyncio.run(main())
    assert receiver.requests == 4
    assert receiver.keys == ["1-cleared"]
    assert action.counters == {"queued": 2, "sent": 1, "retried": 2, "failed": 1, "dropped": 0}


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (404, 1), (429, 3), (500, 3)])
def test_retries_only_what_may_succeed_later(
    server: Server, receiver: Receiver, status: int, attempts: int
) -> None:
    receiver.fail_first = 100
    receiver.fail_status = status
    receiver.retry_after = "0"
    action = hook(server.url, retries=2)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        await wait_until_async(lambda: action.counters["failed"] == 1)
        await action.stop()

    asyncio.run(main())
    assert receiver.requests == attempts
    assert action.counters["retried"] == attempts - 1


def test_connection_errors_are_retried_then_counted_as_failed() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    action = hook(f"http://127.0.0.1:{port}/hook", retries=2)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        await wait_until_async(lambda: action.counters["failed"] == 1)
        await action.stop()

    asyncio.run(main())
    assert action.counters == {"queued": 1, "sent": 0, "retried": 2, "failed": 1, "dropped": 0}


def test_a_full_queue_drops_the_oldest_and_counts_it(server: Server, receiver: Receiver) -> None:
    action = hook(server.url, queue_max=3, concurrency=1)

    async def main() -> None:
        for alarm_id in range(1, 6):
            action.notify(event(alarm_id))  # before start: queued only
        assert action.counters["dropped"] == 2
        await action.start()
        await wait_until_async(lambda: action.counters["sent"] == 3)
        await action.stop()

    asyncio.run(main())
    assert [b["alarm"]["id"] for b in receiver.bodies] == [3, 4, 5]
    assert action.counters == {"queued": 5, "sent": 3, "retried": 0, "failed": 0, "dropped": 2}


def test_notify_never_waits_for_a_hung_receiver(server: Server, receiver: Receiver) -> None:
    receiver.hold.clear()
    action = hook(server.url, queue_max=4, concurrency=1)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        await wait_until_async(lambda: receiver.requests == 1)  # event 1 is in flight, hanging
        for alarm_id in range(2, 12):
            action.notify(event(alarm_id))  # returns although nothing can be sent
        other = threading.Thread(target=action.notify, args=(event(12),))
        other.start()
        other.join()
        assert action.counters["sent"] == 0
        assert action.counters["dropped"] == 7  # 11 waiting, room for 4
        assert action.pending == 5  # 4 queued + 1 in flight
        receiver.hold.set()
        await wait_until_async(lambda: action.counters["sent"] == 5)
        await action.stop()

    asyncio.run(main())
    assert [b["alarm"]["id"] for b in receiver.bodies] == [1, 9, 10, 11, 12]


def test_stop_drains_the_queue(server: Server, receiver: Receiver) -> None:
    action = hook(server.url, concurrency=1)

    async def main() -> None:
        await action.start()
        for alarm_id in (1, 2, 3):
            action.notify(event(alarm_id))
        await action.stop(timeout_s=10.0)

    asyncio.run(main())
    assert [b["alarm"]["id"] for b in receiver.bodies] == [1, 2, 3]
    assert action.counters["sent"] == 3 and action.pending == 0


def test_stop_gives_up_after_its_timeout_and_counts_what_is_left(
    server: Server, receiver: Receiver
) -> None:
    receiver.hold.clear()
    action = hook(server.url)

    async def main() -> None:
        await action.start()
        for alarm_id in (1, 2, 3):
            action.notify(event(alarm_id))
        await wait_until_async(lambda: receiver.requests == 3)  # all three in flight, hanging
        await action.stop(timeout_s=0.1)

    asyncio.run(main())
    assert action.counters == {"queued": 3, "sent": 0, "retried": 0, "failed": 0, "dropped": 3}
    assert action.pending == 0


def test_one_alarms_retries_do_not_hold_back_the_others(server: Server, receiver: Receiver) -> None:
    """A receiver stuck on alarm 1 (as a dead one is during 17 s of retries per alarm):
    alarms 2 and 3 are delivered meanwhile; alarm 1's clear waits behind its raise."""
    receiver.hold.clear()
    receiver.hang_alarm = 1
    action = hook(server.url)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        action.notify(event(1, AlarmEventKind.CLEARED))
        action.notify(event(2))
        action.notify(event(3))
        await wait_until_async(lambda: action.counters["sent"] == 2)
        assert action.pending == 2  # alarm 1: raised in flight, cleared queued behind it
        assert action.health.last_success is not None
        receiver.hold.set()
        await wait_until_async(lambda: action.counters["sent"] == 4)
        await action.stop()

    asyncio.run(main())
    assert sorted(receiver.keys[:2]) == ["2-raised", "3-raised"]  # sent side by side
    assert receiver.keys[2:] == ["1-raised", "1-cleared"]


def test_health_keeps_the_last_error_and_the_last_success(
    server: Server, receiver: Receiver
) -> None:
    receiver.fail_first = 100
    receiver.fail_status = 400
    action = hook(server.url)

    async def main() -> None:
        await action.start()
        action.notify(event(1))
        await wait_until_async(lambda: action.counters["failed"] == 1)
        assert action.health.is_failing and action.health.last_success is None
        assert action.health.last_error == "alarm 1 raised: DeliveryRejected: HTTP 400"
        receiver.fail_first = 0
        action.notify(event(2))
        await wait_until_async(lambda: action.counters["sent"] == 1)
        await action.stop()

    asyncio.run(main())
    health = action.health
    assert not health.is_failing
    assert health.last_error_at is not None and health.last_success is not None
    assert health.last_success >= health.last_error_at


# -- the webhook as a control output (the advisor's output) ----------------------------


def test_write_posts_the_control_value_with_the_webhooks_retries(
    server: Server, receiver: Receiver
) -> None:
    receiver.fail_first = 2  # two 503s: retried with the webhook's backoff
    action = hook(server.url, control={"minimum": 0.15, "maximum": 1.0, "safe_value": 0.3})

    async def run() -> None:
        await action.start()
        try:
            action.write(0.62)
            await wait_until_async(lambda: action.last_value == 0.62, "the value accepted")
        finally:
            await action.stop()

    asyncio.run(run())
    assert [(b["action"], b["value"]) for b in receiver.bodies] == [("ops", 0.62)]
    assert receiver.keys == ["ops-control-1"]
    assert action.counters["control_sent"] == 1 and action.counters["retried"] == 2
    assert not action.health.is_failing


def test_control_range_interlock_and_a_plain_webhook(server: Server, receiver: Receiver) -> None:
    action = hook(server.url, control={"minimum": 0.15, "maximum": 1.0, "safe_value": 0.3})
    plain = hook(server.url)

    async def run() -> None:
        await action.start()
        try:
            with pytest.raises(ControlWriteFailed, match=r"1.5 is outside \[0.15, 1.0\]"):
                action.write(1.5)
            action.notify(event(7))  # an alarm naming it: the safe value, then held
            await wait_until_async(lambda: action.last_value == 0.3, "the safe value")
            with pytest.raises(ControlWriteFailed, match=r"held at the safe value 0\.3"):
                action.write(0.9)
            action.notify(event(7, AlarmEventKind.CLEARED))
            action.write(0.9)
            await wait_until_async(lambda: action.last_value == 0.9, "released")
        finally:
            await action.stop()

    asyncio.run(run())
    with pytest.raises(ControlWriteFailed, match="not a control output"):
        plain.write(0.5)
    values = [b["value"] for b in receiver.bodies if "value" in b]
    assert values == [0.3, 0.9]
    assert action.counters["refused"] == 1 and action.counters["interlocked"] == 1


def test_a_refused_control_value_takes_health_down(server: Server, receiver: Receiver) -> None:
    receiver.fail_first, receiver.fail_status = 1, 422
    action = hook(server.url, control={})

    async def run() -> None:
        await action.start()
        try:
            action.write(0.5)
            await wait_until_async(lambda: action.counters["control_failed"] == 1, "the refusal")
        finally:
            await action.stop()

    asyncio.run(run())
    assert action.health.is_failing
    assert action.health.last_error == "control 0.5: DeliveryRejected: HTTP 422"
