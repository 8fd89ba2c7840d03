"""Who is calling: the bearer-token dependencies every router of one app shares.

One ``Guards`` per app, so the routers share one ``Authenticator`` (and its token
cache: rotating a token forgets it everywhere in the process).

No ``from __future__ import annotations`` here: FastAPI must see the dependency
functions inside ``Annotated`` as objects, and these are closures.
"""

from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud_sync.errors import AccessDenied
from cloud_sync.registry import AdminPrincipal, Authenticator, DevicePrincipal, Principal

BEARER = HTTPBearer(auto_error=False, description="A device token or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


class Guards:
    """FastAPI dependencies: ``principal`` (any valid token), ``admin``, ``device``."""

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

        self.principal = principal
        self.admin = admin
        self.device = device
