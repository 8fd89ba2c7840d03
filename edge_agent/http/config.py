"""HTTP server settings."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr, model_validator

from edgetwin_common.config import Strict


class HttpConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """0 picks a free port (tests)."""
    token: SecretStr | None = None
    """Bearer token for state-changing requests; required when bound beyond localhost."""

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @model_validator(mode="after")
    def _token_beyond_localhost(self) -> HttpConfig:
        if not self.is_loopback and self.token is None:
            raise ValueError(f"host {self.host!r} is reachable beyond this machine: set a token")
        return self
