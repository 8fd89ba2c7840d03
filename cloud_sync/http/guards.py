"""Who is calling: the bearer-token dependencies every router of one app shares.

One ``Guards`` per app, so the routers share one ``Authenticator`` (and its token
cache: rotating a token forgets it everywhere in the process).

No ``from __future__ import annotations`` here: FastAPI must see the dependency
functions inside ``Annotated`` as objects, and these are closures.
"""

from typing import Annotated

from fastapi import Depends, Path, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud_sync.errors import AccessDenied
from cloud_sync.registry import (
    DEVICE_NAME_PATTERN,
    AdminPrincipal,
    Authenticator,
    DevicePrincipal,
    Principal,
)

BEARER = HTTPBearer(auto_error=False, description="A device token or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
DeviceNamePath = Annotated[str, Path(pattern=DEVICE_NAME_PATTERN, max_length=64)]
"""A ``{name}`` path parameter: a device name (422 otherwise)."""


class Guards:
    """FastAPI dependencies: ``principal`` (any valid token), ``admin``, ``device``,
    ``batch_device`` (``device`` for the batch route, cached), and ``reader`` (the
    ``{name}`` of a route the admin or that device may read)."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

        def principal(credentials: Credentials) -> Principal:
            return auth.authenticate(credentials.credentials if credentials else None)

        def admin(who: Annotated[Principal, Depends(principal)]) -> AdminPrincipal:
            if not isinstance(who, AdminPrincipal):
                raise AccessDenied("this needs the admin token")
            return who

        def device(who: Annotated[Principal, Depends(principal)]) -> DevicePrincipal:
            if not isinstance(who, DevicePrincipal):
                raise AccessDenied("this needs a device token (batches belong to a device)")
            return who

        async def batch_device(credentials: Credentials) -> DevicePrincipal:
            # Without a threadpool hop and, for a token seen in the last
            # TOKEN_CACHE_TTL_S, without the database (store_batch checks it again).
            token = credentials.credentials if credentials else None
            who = auth.cached(token)
            if who is None:
                who = await run_in_threadpool(auth.authenticate_cached, token)
            if not isinstance(who, DevicePrincipal):
                raise AccessDenied("this needs a device token (batches belong to a device)")
            return who

        def reader(name: DeviceNamePath, who: Annotated[Principal, Depends(principal)]) -> str:
            if not who.may_read(name):
                raise AccessDenied("a device token reads only its own device")
            return name

        self.principal = principal
        self.admin = admin
        self.device = device
        self.batch_device = batch_device
        self.reader = reader
