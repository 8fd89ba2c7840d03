"""The advisor's routes: GET /twin/advisor (its recommendation, predicted margin, guards'
verdict, the value in force, recent changes) and POST /twin/advisor/override (the
operator holds the output at a value, or releases it with ``{"value": null}``).

Without ``[advisor]``, GET answers ``{"configured": false}`` and POST 404; an override
outside the bounds is a 422 naming the value and the bounds. The override is written at
once when the advisor is enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.http.body import parse_body, read_body
from edge_agent.twin.advisor.errors import OverrideInvalid
from edge_agent.twin.advisor.service import AdvisorService

__all__ = ["OverrideRequest", "add_advisor_routes"]


class OverrideRequest(BaseModel):
    """The body of POST /twin/advisor/override."""

    model_config = ConfigDict(extra="forbid")

    value: float | None
    """Hold the control at this value (within the advisor's bounds); null: release."""
    by: Annotated[str, Field(max_length=128)] = ""
    """Who (operator name), kept in the log and the status."""


_EMPTY = OverrideRequest.model_construct(value=None, by="")


def add_advisor_routes(
    app: FastAPI, service: AdvisorService | None, clock: Callable[[], float]
) -> None:
    def _service() -> AdvisorService:
        if service is None:
            raise HTTPException(
                404, detail="no advisor on this device (no [advisor] in the config)"
            )
        return service

    @app.get("/twin/advisor", summary="The advisor: recommendation, margin, guards, changes")
    async def advisor_status() -> dict[str, Any]:
        # 200 either way: the status page asks on every agent, and a 404 would be a
        # console error on each one without an advisor.
        return {"configured": False} if service is None else service.status()

    @app.post(
        "/twin/advisor/override",
        summary="Hold the control at a value, or release it",
        description='Body: {"value": 0.5, "by": "ops"} holds; {"value": null} releases.',
    )
    async def advisor_override(request: Request) -> dict[str, Any]:
        s = _service()
        body = parse_body(await read_body(request), OverrideRequest, empty=_EMPTY)
        if "value" not in body.model_fields_set:
            raise HTTPException(
                422,
                detail=[{"loc": ["body", "value"], "msg": "value is required (null releases)",
                         "type": "missing"}],
            )  # fmt: skip
        try:
            return s.set_override(body.value, body.by, clock())
        except OverrideInvalid as exc:
            raise HTTPException(
                422, detail=[{"loc": ["body", "value"], "msg": str(exc), "type": "value_error"}]
            ) from None
