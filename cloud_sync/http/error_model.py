"""The API's one error shape: every 4xx and 5xx answer is JSON ``ErrorBody``.

``{"error": "version_conflict", "detail": "desired state changed since version 3 ..."}``;
for 422, ``detail`` is a list of ``{"loc": [...], "msg": ..., "type": ...}``, one per
problem. ``error`` is stable and machine-readable; ``detail`` is for people (and keeps
the field clients read since the first version). The handlers here map every exception
the app can meet onto it: our ``RequestRejected`` errors (their status and headers),
FastAPI's validation errors, Starlette's (no such route or method), the database
being unavailable (503 + Retry-After) and anything unexpected (500). docs/cloud.md lists
the ``error`` names.

The fleet page and its login form are the exception: they answer a browser with an
HTML page (the login form on 401), never the API's JSON.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_sync.errors import DatabaseUnavailable, RequestRejected

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""Told to clients when the database is unavailable (503), seconds."""
REQUEST_INVALID = "request_invalid"
DATABASE_UNAVAILABLE = "database_unavailable"
INTERNAL_ERROR = "internal_error"


class Problem(BaseModel):
    """One problem of a 422: where (``loc``, from "body", "path", "query" or "header"
    down to the field), what (``msg``), and its kind (``type``, e.g. "missing",
    "clock_skew")."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: str
    """What went wrong, snake_case: the error's name (docs/cloud.md, "Errors")."""
    detail: str | list[Problem]
    """A sentence saying what to do; for 422 one ``Problem`` per field."""


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with ``ErrorBody``."""
    return {code: {"model": ErrorBody} for code in codes}


def error_response(
    status: int, error: str, detail: str | list[Problem], headers: Mapping[str, str] | None = None
) -> Response:
    """The ``ErrorBody`` answer; a status that may carry no body gets none."""
    if status < 200 or status in (204, 304):
        return Response(status_code=status, headers=headers)
    body = ErrorBody(error=error, detail=detail)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def error_name(kind: type[Exception]) -> str:
    """``VersionConflict`` → ``version_conflict``: the ``error`` of a RequestRejected."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with ``ErrorBody``."""
    app.add_exception_handler(RequestRejected, _rejected)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DatabaseUnavailable, _database_down)
    app.add_exception_handler(Exception, _unexpected)


async def _rejected(request: Request, exc: RequestRejected) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else _problems(exc.detail)
    return error_response(exc.status, error_name(type(exc)), detail, exc.headers)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    return error_response(422, REQUEST_INVALID, _problems(exc.errors()))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    try:
        name = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:  # a status without a standard phrase
        name = f"http_{exc.status_code}"
    return error_response(exc.status_code, name, str(exc.detail), exc.headers)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.error("database unavailable: %s", getattr(exc, "orig", None) or exc)
    return error_response(
        503,
        DATABASE_UNAVAILABLE,
        "database unavailable; retry later",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so the server logs the traceback once.
    return error_response(500, INTERNAL_ERROR, "internal error; the service log has it")


def _problems(errors: Any) -> list[Problem]:
    """Located problems from FastAPI's or our own validation errors (their ``input``
    and ``ctx`` are left out: an answer never echoes what it refused)."""
    return [Problem(loc=list(e["loc"]), msg=str(e["msg"]), type=str(e["type"])) for e in errors]
