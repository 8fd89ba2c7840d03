"""A real webhook receiver for the notification tests: FastAPI on a real uvicorn
(127.0.0.1, a free port) that records each call and can fail the next ones with 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response

from tests.cloud_sync.conftest import live_server


@dataclass
class Receiver:
    """What the webhook receiver got; ``fail_next`` calls answer 503."""

    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[dict[str, Any]]:
        """One payload per Idempotency-Key (what a receiver that drops duplicates keeps)."""
        seen: dict[str, dict[str, Any]] = {}
        for key, payload in self.calls:
            seen.setdefault(key, payload)
        return list(seen.values())

    def events(self) -> list[tuple[str, str]]:
        return [(p["event"], p["key"]) for p in self.accepted()]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    app = FastAPI()
    state = Receiver(url="")

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        payload = await request.json()
        with state.lock:
            if state.fail_next > 0:
                state.fail_next -= 1
                return Response(status_code=503)
            state.calls.append((request.headers["idempotency-key"], payload))
        return Response(status_code=204)

    with live_server(app) as url:
        state.url = f"{url}/hook"
        yield state
