"""Request bodies read by the routes themselves (the batch, the login form), capped."""

from __future__ import annotations

from fastapi import Request

from cloud_sync.errors import BodyTooLarge


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLarge, 413) as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body exceeds the cap of {limit} bytes")
    return bytes(body)
