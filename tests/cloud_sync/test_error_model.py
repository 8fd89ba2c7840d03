"""One error shape: every error answer of the API is ``{"error", "detail"}``, the spec
says so for every operation, and docs/cloud.md names every ``error``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import cloud_sync.releases.errors  # noqa: F401  (registers the release errors' classes)
from cloud_sync.config import CloudConfig, DatabaseSection
from cloud_sync.db.session import make_engine
from cloud_sync.errors import RequestRejected
from cloud_sync.http.app import create_app
from cloud_sync.http.error_model import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    REQUEST_INVALID,
    ErrorBody,
    error_name,
)
from cloud_sync.http.health import SCHEMA_NOT_MIGRATED
from edgetwin_contracts.batch import MAX_BATCH_BYTES
from tests.cloud_sync.conftest import ADMIN, batch, bearer, post_batch

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cloud.md"
HTML_PAGES = {"/", "/login"}
"""The fleet page and its login form answer browsers with HTML, not the API's JSON."""


def _error(response: httpx.Response, status: int, error: str) -> ErrorBody:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == error, body
    return ErrorBody.model_validate(body)


def test_every_error_answer_has_the_one_shape(api: httpx.Client, tokens: dict[str, str]) -> None:
    missing = _error(api.get("/v1/twin"), 401, "token_rejected")
    assert "bearer" in str(missing.detail).lower()
    assert _error(api.get("/v1/devices", headers=bearer(tokens["pump-1"])), 403, "access_denied")
    assert _error(api.get("/v1/nothing-here", headers=ADMIN), 404, "not_found")
    assert _error(api.delete("/v1/devices", headers=ADMIN), 405, "method_not_allowed")
    assert _error(api.get("/v1/devices/ghost/twin", headers=ADMIN), 404, "device_not_found")
    taken = api.post("/v1/devices", json={"name": "pump-1"}, headers=ADMIN)
    assert _error(taken, 409, "device_exists")
    unversioned = api.patch("/v1/devices/pump-1/desired", json={}, headers=ADMIN)
    assert _error(unversioned, 428, "precondition_required")
    huge = post_batch(api, tokens["pump-1"], b"x" * (MAX_BATCH_BYTES + 1), compress=False)
    assert _error(huge, 413, "body_too_large")
    assert _error(
        post_batch(api, tokens["pump-1"], b"{nope", compress=False), 400, "body_malformed"
    )


def test_validation_problems_are_located_and_never_echo_the_input(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    # FastAPI's own validation (a path parameter) and ours (a batch) answer alike.
    bad_name = _error(api.get("/v1/devices/-bad-/twin", headers=ADMIN), 422, REQUEST_INVALID)
    assert isinstance(bad_name.detail, list)
    assert bad_name.detail[0].loc == ["path", "name"]
    secret = "s3cret-value-never-echoed"
    bad_body = api.post("/v1/devices", json={"name": secret + " !"}, headers=ADMIN)
    assert secret not in bad_body.text
    problems = _error(bad_body, 422, REQUEST_INVALID).detail
    assert isinstance(problems, list) and problems[0].loc == ["body", "name"]

    body = batch(1)
    body["sequence"] = "one"
    invalid = post_batch(api, tokens["pump-1"], body)
    problems = _error(invalid, 422, "batch_invalid").detail
    assert isinstance(problems, list)
    assert problems[0].loc == ["body", "sequence"]


def test_database_unavailable_is_a_503_with_retry_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'cloud.db'}"
    engine = make_engine(url)
    config = CloudConfig(database=DatabaseSection(url=url))
    try:
        with TestClient(create_app(config, engine)) as client:
            answer = client.get("/ready")
            _error(answer, 503, DATABASE_UNAVAILABLE)
            assert answer.headers["retry-after"] == "5"
    finally:
        engine.dispose()


def test_not_ready_until_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    try:
        with TestClient(create_app(CloudConfig(database=DatabaseSection(url=url)), engine)) as c:
            not_ready = _error(c.get("/ready"), 503, SCHEMA_NOT_MIGRATED)
            assert "cloud-sync db upgrade" in str(not_ready.detail)
    finally:
        engine.dispose()


def test_an_unexpected_failure_is_a_500_in_the_same_shape(
    config: CloudConfig, engine: Engine
) -> None:
    # No route of ours fails on purpose: one that does is added to the real app.
    app = create_app(config, engine)

    @app.get("/v1/failing")
    def failing() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = _error(client.get("/v1/failing"), 500, INTERNAL_ERROR)
        assert "a bug" not in str(answer.detail)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_the_spec_documents_one_error_model(app: Any) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, operation in _operations(spec):
        for status, answer in operation["responses"].items():
            if int(status) < 400 or (path in HTML_PAGES and "text/html" in answer["content"]):
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == error_ref, (method, path, status)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in operation["responses"] or path in HTML_PAGES, (method, path)


def _subclasses(kind: type[RequestRejected]) -> set[type[RequestRejected]]:
    found = set()
    for sub in kind.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_docs_name_every_error() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    names = {error_name(kind) for kind in _subclasses(RequestRejected)}
    names |= {REQUEST_INVALID, DATABASE_UNAVAILABLE, INTERNAL_ERROR, SCHEMA_NOT_MIGRATED}
    names |= {"not_found", "method_not_allowed"}
    assert names <= documented, sorted(names - documented)
