"""The device side of the cloud HTTP contract: POST /v1/batches, GET /v1/twin.

Every outcome is one return value or one exception class from ``errors.py``, named for
what the worker does next.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent import __version__
from edge_agent.sync.errors import (
    BatchOutOfOrder,
    BatchRejected,
    CloudSequenceOutOfRange,
    CloudUnauthorized,
    CloudUnavailable,
)
from edgetwin_contracts.batch import BatchAck, DesiredState

REJECTED_STATUSES = frozenset({400, 413, 415, 422})
"""The cloud refused the batch's content: resending it unchanged cannot help."""
_DETAIL_MAX = 500


MAX_SEQUENCE = 2**53 - 1
"""The highest batch sequence this device sends or continues from: the largest integer
every JSON parser reads exactly (a double's 53-bit mantissa), far below SQLite's
INTEGER limit (2^63 - 1). At 100 batches a second it lasts 2.8 million years, so a cloud
that reports more for this device holds a batch the device never sent (someone else with
its token, a cloud bug): the worker does not follow it (docs/sync.md)."""


def check_sequence(sequence: int) -> int:
    """``sequence`` if the device may send it or continue from it. Raises
    CloudSequenceOutOfRange beyond MAX_SEQUENCE."""
    if sequence > MAX_SEQUENCE:
        raise CloudSequenceOutOfRange(sequence, MAX_SEQUENCE)
    return sequence


_Count = Annotated[int, Field(ge=0, strict=True)]


class _TwinAnswer(BaseModel):
    """The parts of GET /v1/twin the device reads; other keys are the cloud's."""

    model_config = ConfigDict(extra="ignore")

    desired: dict[str, Any] | None = None
    desired_version: _Count | None = None
    reported_version: _Count | None = None
    last_sequence: _Count | None = None


class TwinView:
    """What GET /v1/twin answers (the parts the device uses). Raises ValueError
    (pydantic's ValidationError) when a field the device reads is not a non-negative
    integer or the desired state does not validate; ``last_sequence`` may exceed
    MAX_SEQUENCE (the worker decides what to do about that)."""

    __slots__ = ("desired", "desired_version", "last_sequence", "raw", "reported_version")

    def __init__(self, raw: dict[str, Any]) -> None:
        answer = _TwinAnswer.model_validate(raw)
        self.raw = raw
        self.desired = DesiredState.model_validate(answer.desired or {})
        self.desired_version = answer.desired_version or self.desired.version
        self.reported_version = answer.reported_version or 0
        self.last_sequence = answer.last_sequence or 0


def device_http_client(
    token: str | None, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An HTTP client that speaks to the cloud as this device: its bearer token on every
    request (None: no token; the caller adds it per request where it may go)."""
    headers = {"User-Agent": f"edgetwin-edge-agent/{__version__}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(timeout=timeout_s, transport=transport, headers=headers)


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
                strict_json(response.content)  # no NaN or Infinity into alarm levels
                ack = BatchAck.model_validate_json(response.content)
            except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
                raise CloudUnavailable(f"unreadable acknowledgement: {_brief(exc)}") from exc
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
            data = strict_json(response.content)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return TwinView(data)
        except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
            raise CloudUnavailable(f"unreadable twin: {_brief(exc)}") from exc

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


def strict_json(content: bytes) -> Any:
    """``content`` parsed as RFC 8259 JSON: NaN, Infinity and numbers beyond a double
    (1e999) are refused, whatever Python's parser allows. Raises ValueError,
    RecursionError (nesting deeper than the interpreter's limit)."""
    return json.loads(content, parse_constant=_refuse_constant, parse_float=_finite)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _brief(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
        )
    return str(exc)[:_DETAIL_MAX]


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
