"""A bounded schemathesis run against the service's own OpenAPI spec: no 5xx, and every
answer matches the documented status codes, content types and schemas.

The device routes get a device token, the rest the admin token, so the fuzzer reaches
the handlers rather than stopping at 401. (Operations are walked here rather than with
``schemathesis.pytest.from_fixture``, which does not load under this pytest version.)
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from cloud_sync.errors import DeviceNotFound
from cloud_sync.twin import get_desired
from tests.cloud_sync.conftest import ADMIN, bearer

DEVICE_ROUTES = {"/v1/batches", "/v1/twin"}
EXAMPLES_PER_OPERATION = 25
"""Per operation and generation mode (schema-valid data, then schema-breaking data)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.slow
def test_api_fuzz(app: FastAPI, engine: Engine, tokens: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} >= {"/v1/batches", "/v1/devices/{name}/desired"}
    for operation in operations:
        headers = bearer(tokens["pump-1"]) if operation.path in DEVICE_ROUTES else dict(ADMIN)
        _fuzz(operation, GenerationMode.POSITIVE, headers, engine)
        # Nothing to break in an operation without inputs (GET /health): Unsatisfiable.
        with contextlib.suppress(Unsatisfiable):
            _fuzz(operation, GenerationMode.NEGATIVE, headers, engine)


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], engine: Engine) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        sent = dict(headers)
        if case.method.upper() == "PATCH" and mode is GenerationMode.POSITIVE:
            # Reach patch_desired itself, not only the 428 in front of it.
            name = str((case.path_parameters or {}).get("name", ""))
            with contextlib.suppress(DeviceNotFound):
                sent["If-Match"] = f'"{get_desired(engine, name).version}"'
        case.call_and_validate(headers=sent, checks=CHECKS)

    run()
