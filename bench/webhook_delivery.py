"""Webhook delivery while the receiver struggles: how long until every alarm of a burst
reaches the control room, one alarm at a time (concurrency = 1, the sender before issue
16, the reference) against the default concurrency (4).

A real receiver (uvicorn on 127.0.0.1) answers 503 to the first four attempts of every
event, then 200, as a gateway restarting would. The backoff is scaled down (initial
0.05 s, max 1 s) so the run takes seconds; with the shipped backoff (0.5 s to 30 s)
each event costs about 17 s before it is given up or delivered, and the ratio is the
same. Printed: seconds until the first and the last event were delivered, and the ratio
of the last against the reference.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge_agent.actions.webhook import WebhookAction, WebhookActionConfig
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity

ALARMS = 8
REFUSED = 4
"""Attempts of each event the receiver answers with 503."""


class Receiver:
    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.delivered: dict[str, float] = {}
        app = Starlette(routes=[Route("/alarms", self._hook, methods=["POST"])])
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/alarms"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def _hook(self, request: Request) -> Response:
        key = request.headers["idempotency-key"]
        self.attempts[key] += 1
        if self.attempts[key] <= REFUSED:
            return Response(status_code=503)
        self.delivered.setdefault(key, time.perf_counter())
        return Response(status_code=200)

    def __enter__(self) -> Receiver:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def reset(self) -> None:
        self.attempts.clear()
        self.delivered.clear()


def _event(alarm_id: int) -> AlarmEvent:
    alarm = Alarm(
        id=alarm_id,
        rule="bearing-hot",
        channel=f"bearing{alarm_id}",
        kind="value_above",
        severity=Severity.CRITICAL,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        raised_at=1_700_000_000.0,
        value=90.0,
        message="bearing 90 >= 85",
    )
    return AlarmEvent(AlarmEventKind.RAISED, 1_700_000_000.0, alarm)


def burst(receiver: Receiver, concurrency: int) -> tuple[float, float]:
    """Seconds from the burst to the first and to the last delivery."""
    receiver.reset()
    config = WebhookActionConfig.model_validate(
        {
            "type": "webhook",
            "name": "control-room",
            "url": receiver.url,
            "retries": REFUSED + 1,
            "backoff": {"initial_s": 0.05, "max_s": 1.0},
            "concurrency": concurrency,
        }
    )
    action = WebhookAction(config)

    async def main() -> float:
        await action.start()
        start = time.perf_counter()
        for alarm_id in range(1, ALARMS + 1):
            action.notify(_event(alarm_id))
        while action.counters["sent"] + action.counters["failed"] < ALARMS:
            await asyncio.sleep(0.01)
        await action.stop()
        return start

    start = asyncio.run(main())
    assert action.counters["sent"] == ALARMS, action.counters
    times = sorted(t - start for t in receiver.delivered.values())
    return times[0], times[-1]


def main() -> None:
    with Receiver() as receiver:
        print(f"{ALARMS} alarms at once; the receiver refuses the first {REFUSED} attempts of each")
        print(
            f"{'concurrency':>11} {'first delivered s':>18} {'last delivered s':>17} {'ratio':>6}"
        )
        reference: float | None = None
        for concurrency in (1, 4, 8):
            first, last = burst(receiver, concurrency)
            reference = reference or last
            print(f"{concurrency:>11} {first:>18.2f} {last:>17.2f} {last / reference:>6.2f}")


if __name__ == "__main__":
    main()
