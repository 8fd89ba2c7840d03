"""The device side of the cloud HTTP contract: POST /v1/batches, GET /v1/twin.

Every outcome is one return value or one exception class from ``errors.py``, named for
what the worker does next.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from edge_agent import __version__
from edge_agent.sync.errors import (
    BatchOutOfOrder,
    BatchRejected,
    CloudUnauthorized,
    CloudUnavailable,
)
from edgetwin_contracts.batch import BatchAck, DesiredState

REJECTED_STATUSES = frozenset({400, 413, 415, 422})
"""The cloud refused the batch's content: resending it unchanged cannot help."""
_DETAIL_MAX = 500


class TwinView:
    """What GET /v1/twin answers (the parts the device uses)."""

    __slots__ = ("desired", "desired_version", "last_sequence", "raw", "reported_version")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.desired = DesiredState.model_validate(raw.get("desired") or {})
        self.desired_version = int(raw.get("desired_version") or self.desired.version)
        self.reported_version = int(raw.get("reported_version") or 0)
        self.last_sequence = int(raw.get("last_sequence") or 0)


def device_http_client(
    token: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An HTTP client that speaks to the cloud as this device (its bearer token)."""
    return httpx.AsyncClient(
        timeout=timeout_s,
        transport=transport,
        headers={
            "Authorization": f"Bearer {token}",
            "User-Agent": f"edgetwin-edge-agent/{__version__}",
        },
    )


class CloudClient:
    """One device's connection to the cloud. ``url``: the base URL (no trailing slash);
    ``token``: the device's bearer token; ``timeout_s``: per request. Create and use it
    on one event loop; ``aclose`` when done."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = device_http_client(token, timeout_s, transport)

    async def post_batch(self, sequence: int, body: bytes) -> BatchAck:
        """Send one gzip JSON batch. Returns the acknowledgement (stored now, or a
        duplicate). Raises CloudUnavailable (retry the same bytes later),
        CloudUnauthorized, BatchRejected, BatchOutOfOrder."""
        try:
            response = await self._http.post(
                f"{self.url}/v1/batches",
                content=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        except httpx.HTTPError as exc:
            raise CloudUnavailable(f"POST /v1/batches: {_describe(exc)}") from exc
        status = response.status_code
        if status == 200:
            try:
                ack = BatchAck.model_validate_json(response.content)
            except ValidationError as exc:
                raise CloudUnavailable(f"unreadable acknowledgement: {exc}") from exc
            if ack.sequence != sequence:
                raise CloudUnavailable(
                    f"acknowledgement for sequence {ack.sequence}, sent {sequence}"
                )
            return ack
        self._raise_for(status, _detail(response))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_twin(self) -> TwinView:
        """The device's twin as the cloud holds it. Raises CloudUnavailable,
        CloudUnauthorized."""
        try:
            response = await self._http.get(f"{self.url}/v1/twin")
        except httpx.HTTPError as exc:
            raise CloudUnavailable(f"GET /v1/twin: {_describe(exc)}") from exc
        if response.status_code != 200:
            detail = _detail(response)
            if response.status_code in (401, 403):
                raise CloudUnauthorized(f"HTTP {response.status_code}: {detail}")
            raise CloudUnavailable(f"GET /v1/twin: HTTP {response.status_code}: {detail}")
        try:
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return TwinView(data)
        except (ValueError, ValidationError) as exc:
            raise CloudUnavailable(f"unreadable twin: {exc}") from exc

    @staticmethod
    def _raise_for(status: int, detail: str) -> None:
        if status in (401, 403):
            raise CloudUnauthorized(f"HTTP {status}: {detail}")
        if status == 409:
            raise BatchOutOfOrder(f"HTTP 409: {detail}")
        if status in REJECTED_STATUSES:
            raise BatchRejected(status, detail)
        # 5xx, 429 and anything unexpected (a proxy's 404 page, say): try again later.
        raise CloudUnavailable(f"HTTP {status}: {detail}")

    async def aclose(self) -> None:
        await self._http.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:_DETAIL_MAX]
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:_DETAIL_MAX]
    return str(data)[:_DETAIL_MAX]


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
