"""The device registry: names, per-device tokens, and who a bearer token belongs to.

A token is ``secrets.token_urlsafe(32)`` (256 bits), shown once and stored only as its
SHA-256 hex; hashes are compared with ``hmac.compare_digest``. A fast hash is enough
here: the tokens are random, so there is nothing to brute-force from a leaked hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.models import Device
from cloud_sync.db.session import read_connection
from cloud_sync.errors import DeviceExists, DeviceNotFound, TokenRejected
from cloud_sync.twin import initial_desired

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
    token_sha256: str | None = field(default=None, compare=False, repr=False)
    """Of the token it authenticated with (store_batch checks it on the locked row)."""

    def may_read(self, device_name: str) -> bool:
        return device_name == self.name


Principal = AdminPrincipal | DevicePrincipal

TOKEN_CACHE_TTL_S = 60.0
"""How long ``Authenticator.authenticate_cached`` trusts a device token it looked up."""
TOKEN_CACHE_MAX = 100_000
"""Entries; the cache starts over when full (at most one lookup per device again)."""

# Authenticators per engine, so that rotate_token in this process drops cached tokens.
_AUTHENTICATORS: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[Authenticator]] = (
    weakref.WeakKeyDictionary()
)
_AUTHENTICATORS_GUARD = threading.Lock()


@dataclass(frozen=True, eq=False, slots=True, weakref_slot=True)
class Authenticator:
    """Turns a bearer token into a Principal. ``admin_sha256`` None: no admin exists.

    ``authenticate`` asks the database every time. ``authenticate_cached`` (the batch
    route) keeps known device tokens in memory for TOKEN_CACHE_TTL_S: a token rotated in
    this process is dropped at once, one rotated elsewhere (the CLI, another replica) may
    still pass this check for up to the TTL, which is why the ingest transaction checks
    the token again on the locked device row (``store_batch(token_sha256=...)``), so
    nothing is stored with a rotated token. Unknown tokens are never cached.
    """

    engine: Engine
    admin_sha256: str | None
    _cache: dict[str, tuple[float, DevicePrincipal]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        with _AUTHENTICATORS_GUARD:
            _AUTHENTICATORS.setdefault(self.engine, weakref.WeakSet()).add(self)

    def cached(self, token: str | None) -> Principal | None:
        """The principal of ``token`` without the database: the admin, a device token seen
        within the TTL; None: ask ``authenticate_cached`` (it may still be rejected)."""
        if not token:
            return None
        digest = token_sha256(token)
        if self.admin_sha256 is not None and hmac.compare_digest(digest, self.admin_sha256):
            return AdminPrincipal()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def authenticate_cached(self, token: str | None) -> Principal:
        """``authenticate``, remembering device tokens for TOKEN_CACHE_TTL_S."""
        found = self.cached(token)
        if found is not None:
            return found
        who = self.authenticate(token)
        if isinstance(who, DevicePrincipal):
            assert token is not None
            if len(self._cache) >= TOKEN_CACHE_MAX:
                self._cache.clear()
            self._cache[token_sha256(token)] = (time.monotonic() + TOKEN_CACHE_TTL_S, who)
        return who

    def forget(self, name: str) -> None:
        """Drop device ``name``'s cached token (rotated)."""
        for digest, (_, who) in list(self._cache.items()):
            if who.name == name:
                self._cache.pop(digest, None)

    def authenticate(self, token: str | None) -> Principal:
        """Raises TokenRejected (401) for a missing token or one nobody holds."""
        if not token:
            raise TokenRejected("missing bearer token (Authorization: Bearer <token>)")
        digest = token_sha256(token)
        if self.admin_sha256 is not None and hmac.compare_digest(digest, self.admin_sha256):
            return AdminPrincipal()
        with read_connection(self.engine) as conn:
            row = conn.execute(
                select(Device.id, Device.name, Device.token_sha256).where(
                    Device.token_sha256 == digest
                )
            ).first()
        # The indexed lookup finds the row; compare_digest keeps the final check constant-time.
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise TokenRejected("unknown token: no device and not the admin")
        return DevicePrincipal(row.id, row.name, digest)

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
                    **initial_desired(),
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
    with _AUTHENTICATORS_GUARD:
        authenticators = list(_AUTHENTICATORS.get(engine, ()))
    for auth in authenticators:
        auth.forget(name)
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
