"""HTTP server settings."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator

from edgetwin_common.config import Strict

MIN_TOKEN_CHARS = 16
"""The shortest ``[http] token`` accepted: 16 characters of ``openssl rand -hex 16``
(32) are far beyond guessing through an HTTP API."""

_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?$")


class HttpConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """0 picks a free port (tests)."""
    token: SecretStr | None = None
    """Bearer token for state-changing requests, at least 16 characters (e.g. `openssl
    rand -hex 16`); required when bound beyond localhost. Without one, a state-changing
    request must be same-origin JSON (docs/agent.md, "Security")."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names (no port) this agent is reached by besides localhost, 127.0.0.1, [::1],
    `host` and IP addresses, e.g. `["pump-7.local"]`: a request without the token naming
    another host is refused (DNS rebinding)."""

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        secret = token.get_secret_value()
        if secret != secret.strip() or len(secret) < MIN_TOKEN_CHARS:
            # An empty token would disable authentication at run time: refuse it here.
            raise ValueError(
                f"token must be at least {MIN_TOKEN_CHARS} characters without surrounding"
                f" spaces (got {len(secret)}); e.g. `openssl rand -hex 16`, or remove the"
                " key for no token on localhost"
            )
        return token

    @field_validator("allowed_hosts")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _HOST_NAME.match(name):
                raise ValueError(f"{name!r} is not a host name (no scheme, port or path)")
        return names

    @model_validator(mode="after")
    def _token_beyond_localhost(self) -> HttpConfig:
        if not self.is_loopback and self.token is None:
            raise ValueError(f"host {self.host!r} is reachable beyond this machine: set a token")
        return self
