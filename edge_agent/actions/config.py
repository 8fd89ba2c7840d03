"""Action configs: a discriminated union on ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, HttpUrl

from edge_agent.configbase import Strict

ActionName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class LogActionConfig(Strict):
    type: Literal["log"]
    name: ActionName
    level: Literal["info", "warning", "error"] = "warning"


class WebhookActionConfig(Strict):
    """HTTP POST of the alarm event as JSON, retried with exponential backoff."""

    type: Literal["webhook"]
    name: ActionName
    url: HttpUrl
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    retries: Annotated[int, Field(ge=0, le=100)] = 5
    backoff_initial_s: Annotated[float, Field(gt=0)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0)] = 30.0
    headers: dict[str, str] = Field(default_factory=dict)
    queue_max: Annotated[int, Field(ge=1)] = 1000
    """Events waiting to be sent; past it the oldest is dropped and counted."""


ActionConfig = Annotated[LogActionConfig | WebhookActionConfig, Field(discriminator="type")]
