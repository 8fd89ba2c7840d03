"""The twin's routes: GET /twin (what it models) and POST /twin/whatif (a scenario in,
each channel's predicted path with its band and the first limit crossing out).

A malformed scenario is a 422 naming the field; on a device without a [twin] section
POST answers 404, with a twin that did not load 503 with why, and a history the twin cannot start
from (a channel missing or short) 409.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from edge_agent.http.body import parse_body, read_body
from edge_agent.twin.errors import ScenarioInvalid, TwinStateIncomplete, TwinUnavailable
from edge_agent.twin.scenario import Scenario
from edge_agent.twin.service import TwinService
from edge_agent.twin.whatif import WhatIfAnswer

_EMPTY = Scenario.model_construct(controls={})


def add_twin_routes(app: FastAPI, service: TwinService | None) -> None:
    def _service() -> TwinService:
        if service is None:
            raise HTTPException(404, detail="no twin on this device (no [twin] in the config)")
        return service

    @app.get(
        "/twin",
        summary="The twin model: channels, controls, period, horizon",
        description="Always 200: `available` false with `reason` when the device has no"
        " twin, so the status page asks without an error in the browser's console.",
    )
    async def twin_info() -> dict[str, Any]:
        if service is None:
            return {"available": False, "reason": "no [twin] in the config"}
        info = service.info()
        if info is None:
            return {"available": False, "reason": service.unavailable}
        return {"available": True, "reason": "", **asdict(info)}

    @app.post(
        "/twin/whatif",
        response_model=WhatIfAnswer,
        summary="Roll the twin forward under a scenario",
        description='Body: a Scenario, e.g. {"controls": {"load": [{"value": 0.9,'
        ' "minutes": 30}, {"value": 0.6, "minutes": 30}]}}.',
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": Scenario.model_json_schema()}},
            }
        },
    )
    async def whatif(request: Request) -> WhatIfAnswer:
        s = _service()
        scenario = parse_body(await read_body(request), Scenario, empty=_EMPTY)
        if not scenario.controls:
            raise HTTPException(
                422,
                detail=[{"loc": ["body", "controls"], "msg": "a scenario needs controls",
                         "type": "missing"}],
            )  # fmt: skip
        try:
            return s.what_if(scenario)
        except TwinUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from None
        except ScenarioInvalid as exc:
            raise HTTPException(
                422,
                detail=[{"loc": ["body", *exc.field.split(".")], "msg": str(exc),
                         "type": "scenario_invalid"}],
            ) from None  # fmt: skip
        except TwinStateIncomplete as exc:
            raise HTTPException(409, detail=str(exc)) from None
