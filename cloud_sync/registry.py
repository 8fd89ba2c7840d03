"""The device registry: names, per-device tokens, and who a bearer token belongs to.

A token is ``secrets.token_urlsafe(32)`` (256 bits), shown once and stored only as its
SHA-256 hex; hashes are compared with ``hmac.compare_digest``. A fast hash is enough
here: the tokens are random, so there is nothing to brute-force from a leaked hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.models import Device
from cloud_sync.errors import DeviceExists, DeviceNotFound, TokenRejected

DEVICE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DeviceName = Annotated[str, Field(pattern=DEVICE_NAME_PATTERN, min_length=1, max_length=64)]
"""1–64 characters: letters, digits, ``_.-``; not starting with a punctuation mark."""


def new_token() -> str:
    """A fresh random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """The holder of the admin token: fleet operations on every device."""

    def may_read(self, device_name: str) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class DevicePrincipal:
    """A device: writes its own batches, reads its own twin and summaries."""

    device_id: int
    name: str

    def may_read(self, device_name: str) -> bool:
        return device_name == self.name


Principal = AdminPrincipal | DevicePrincipal


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Turns a bearer token into a Principal. ``admin_sha256`` None: no admin exists."""

    engine: Engine
    admin_sha256: str | None

    def authenticate(self, token: str | None) -> Principal:
        """Raises TokenRejected (401) for a missing token or one nobody holds."""
        if not token:
            raise TokenRejected("missing bearer token (Authorization: Bearer <token>)")
        digest = token_sha256(token)
        if self.admin_sha256 is not None and hmac.compare_digest(digest, self.admin_sha256):
            return AdminPrincipal()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Device.id, Device.name, Device.token_sha256).where(
                    Device.token_sha256 == digest
                )
            ).first()
        # The indexed lookup finds the row; compare_digest keeps the final check constant-time.
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise TokenRejected("unknown token: no device and not the admin")
        return DevicePrincipal(row.id, row.name)

    def is_admin_token(self, token: str) -> bool:
        return self.admin_sha256 is not None and hmac.compare_digest(
            token_sha256(token), self.admin_sha256
        )


def add_device(engine: Engine, name: str) -> str:
    """Register a device; returns its token (the only time it is visible).

    Raises DeviceExists if the name is taken. ``name`` must match DEVICE_NAME_PATTERN
    (the caller validates).
    """
    token = new_token()
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Device).values(
                    name=name,
                    token_sha256=token_sha256(token),
                    created_at=time.time(),
                    last_sequence=0,
                    desired={},
                    desired_version=0,
                    batches=0,
                    duplicates=0,
                    sequence_gaps=0,
                )
            )
    except IntegrityError:
        raise DeviceExists(f"a device named {name!r} exists already") from None
    return token


def rotate_token(engine: Engine, name: str) -> str:
    """Give a device a new token (the old one stops working at once); returns it.

    Raises DeviceNotFound.
    """
    token = new_token()
    with engine.begin() as conn:
        result = conn.execute(
            update(Device).where(Device.name == name).values(token_sha256=token_sha256(token))
        )
    if result.rowcount == 0:
        raise DeviceNotFound(f"no device named {name!r}")
    return token


def device_id(engine: Engine, name: str) -> int:
    """Raises DeviceNotFound."""
    with engine.connect() as conn:
        found = conn.execute(select(Device.id).where(Device.name == name)).scalar()
    if found is None:
        raise DeviceNotFound(f"no device named {name!r}")
    return found
