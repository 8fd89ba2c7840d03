"""The fleet page for browsers: ``GET /``, ``POST /login``, ``POST /logout``, and its own
script under ``/static`` (no external resources).

``GET /`` takes the admin bearer token or a session cookie set by ``POST /login``
(HttpOnly, SameSite=Strict, 12 h): an HMAC of its expiry keyed from the admin token's
hash, so any replica can check it and the token never reaches the browser. Without
either the answer is the login form (401, HTML): the page's errors are pages, not the
API's JSON.
"""

# No `from __future__ import annotations`: FastAPI resolves the route signatures.

import hashlib
import hmac
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from cloud_sync import __version__
from cloud_sync.config import FleetSection
from cloud_sync.fleet import (
    STATIC,
    PresenceLookup,
    make_environment,
    render_fleet_page,
    render_login_page,
)
from cloud_sync.http.bodies import read_capped
from cloud_sync.http.error_model import ErrorBody
from cloud_sync.http.guards import Credentials
from cloud_sync.registry import Authenticator

SESSION_COOKIE = "cloud_sync_fleet"
SESSION_TTL_S = 12 * 3600
MAX_LOGIN_BYTES = 4096

_LOGIN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"token": {"type": "string"}},
                    "required": ["token"],
                }
            }
        },
    }
}


class FleetSession:
    """The page's session cookies for one admin token; ``None``: no admin, no session."""

    def __init__(self, admin_sha256: str | None) -> None:
        self._is_enabled = admin_sha256 is not None
        self._key = hashlib.sha256(
            b"cloud-sync fleet session\x00" + (admin_sha256 or "").encode()
        ).digest()

    def cookie(self, expires: int) -> str:
        """A cookie valid until ``expires`` (UNIX seconds)."""
        mac = hmac.new(self._key, str(expires).encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def is_valid(self, cookie: str | None) -> bool:
        if not cookie or not self._is_enabled:
            return False
        expires, _, _mac = cookie.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(cookie, self.cookie(int(expires)))


def fleet_page_router(
    fleet: FleetSection,
    engine: Engine,
    auth: Authenticator,
    presence: PresenceLookup | None = None,
) -> APIRouter:
    """The page, its login and logout, and ``/static``."""
    router = APIRouter(tags=["fleet page"])
    templates = make_environment()
    session = FleetSession(auth.admin_sha256)

    def login_page(message: str | None, status: int) -> HTMLResponse:
        return HTMLResponse(render_login_page(templates, message, __version__), status_code=status)

    @router.get(
        "/",
        response_class=HTMLResponse,
        summary="Fleet page (admin: bearer token or the session cookie of POST /login)",
        responses={401: {"content": {"text/html": {}}, "description": "the login form"}},
    )
    def fleet_page(request: Request, credentials: Credentials) -> HTMLResponse:
        is_admin = (credentials is not None and auth.is_admin_token(credentials.credentials)) or (
            session.is_valid(request.cookies.get(SESSION_COOKIE))
        )
        if not is_admin:
            return login_page(None, 401)
        return HTMLResponse(render_fleet_page(templates, engine, fleet, __version__, presence))

    @router.post(
        "/login",
        summary="Fleet page login: admin token in a form, answered with a session cookie",
        responses={
            303: {"description": "logged in: cookie set, go to /"},
            400: {"content": {"text/html": {}}, "description": "not a login form"},
            413: {"model": ErrorBody},
            401: {"content": {"text/html": {}}, "description": "wrong token: the form again"},
        },
        response_class=HTMLResponse,
        openapi_extra=_LOGIN_FORM,
    )
    async def login(request: Request) -> Response:
        raw = await read_capped(request, MAX_LOGIN_BYTES)
        try:
            form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
        except ValueError:  # more fields than a login form has
            return login_page("That is not the login form.", 400)
        token = (form.get("token") or [""])[0]
        if not token or not auth.is_admin_token(token):
            return login_page("That is not the admin token.", 401)
        expires = int(time.time()) + SESSION_TTL_S
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session.cookie(expires),
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post(
        "/logout",
        summary="Fleet page logout: clears the session cookie",
        responses={303: {"description": "cookie cleared, go to /"}},
        response_class=HTMLResponse,
    )
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    router.mount("/static", StaticFiles(directory=STATIC), name="static")
    return router
