"""Fetching a release archive from the cloud: size-capped, resumable by HTTP Range.

The archive is written to ``models_dir/.partial/<sha256>.tar``; an interrupted transfer
leaves it there and the next attempt asks for the remaining bytes (``Range: bytes=N-``).
A server that ignores the Range (200) restarts the file. The answer's Content-Type must
not be text/HTML or JSON, and the first bytes must be a tar header.

The device's token goes to the configured cloud's origin (scheme, host and port of
``[sync] url``) and nowhere else: a release whose URL is on another origin (a CDN, an
object store's signed URL, or a URL someone slipped into a release) is fetched without
credentials, and so is every redirect that leaves the cloud's origin (httpx drops the
header when a redirect changes origin).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from edge_agent.model.ota.archive import is_tar_header
from edge_agent.model.ota.errors import (
    ArchiveMismatch,
    DownloadFailed,
    DownloadInterrupted,
    DownloadTooLarge,
    NotAnArchive,
)
from edge_agent.sync.client import device_http_client

_REFUSED_TYPES = ("text/", "application/json", "application/problem+json")


MAX_REDIRECTS = 5
"""Redirects followed per request (a release store's signed URL is one)."""


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


class Downloader:
    """Downloads release archives, with the device's bearer token on the cloud's origin
    only (``credentials_for``).

    url: the cloud's base URL; a release's ``url`` is a path on it (or absolute).
    Create and use on one event loop; ``aclose`` when done.
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._origin = origin(self.url)
        self._auth = {"Authorization": f"Bearer {token}"}
        # No default Authorization: it is added per request, for the cloud's origin.
        self._http = device_http_client(None, timeout_s, transport)
        self._http.follow_redirects = True
        self._http.max_redirects = MAX_REDIRECTS

    def resolve(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.url}/{path.lstrip('/')}"

    def credentials_for(self, url: str) -> dict[str, str]:
        """The Authorization header for ``url``: the token on the cloud's origin, none
        anywhere else."""
        return dict(self._auth) if origin(url) == self._origin else {}

    async def fetch(self, path: str, dest: Path, size_bytes: int) -> None:
        """Bring ``dest`` to ``size_bytes`` bytes from ``path``, resuming from its size.

        Raises DownloadInterrupted (transient: the partial file stays, call again),
        NotAnArchive, DownloadTooLarge, DownloadFailed (a definite refusal).
        """
        have = dest.stat().st_size if dest.exists() else 0
        if have > size_bytes:
            dest.unlink()
            have = 0
        if have == size_bytes:
            return
        url = self.resolve(path)
        headers = self.credentials_for(url)
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                await self._receive(response, dest, have, size_bytes)
        except httpx.HTTPError as exc:
            raise DownloadInterrupted(f"{type(exc).__name__}: {exc}") from exc

    async def _receive(
        self, response: httpx.Response, dest: Path, have: int, size_bytes: int
    ) -> None:
        status = response.status_code
        ctype = response.headers.get("content-type", "").lower()
        if status in (200, 206) and ctype.startswith(_REFUSED_TYPES):
            what = "HTML" if "html" in ctype else ctype
            raise NotAnArchive(f"server answered {what}, not a tar archive (HTTP {status})")
        if status == 416:  # the partial file stays: a server that shrank is not progress
            raise DownloadInterrupted(f"server refused the range from byte {have} (416)")
        if status in (401, 403, 404, 410):
            raise DownloadFailed(f"HTTP {status} for the release archive")
        if status not in (200, 206):
            raise DownloadInterrupted(f"HTTP {status}")
        if status == 200:
            have = 0  # the whole file, from the start
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit():
            served = have + int(declared)
            if served > size_bytes:
                raise DownloadTooLarge(
                    f"server sends {served} bytes, the release says {size_bytes}"
                )
            if served < size_bytes:
                # A complete answer that is shorter: the file itself is not the release
                # (a cut connection, by contrast, falls short of its Content-Length).
                raise ArchiveMismatch(
                    f"archive is {served} bytes as served, the release says {size_bytes}"
                )
        mode = "r+b" if have else "wb"
        if have and not dest.exists():
            mode = "wb"
        with dest.open(mode) as fh:
            fh.seek(have)
            fh.truncate()
            written = have
            head_checked = have >= 512
            head = b""
            try:
                async for chunk in response.aiter_bytes():
                    written += len(chunk)
                    if written > size_bytes:
                        raise DownloadTooLarge(
                            f"server sent more than the {size_bytes} bytes the release declares"
                        )
                    if not head_checked:
                        head += chunk
                        if len(head) >= 512:
                            head_checked = True
                            if not is_tar_header(head):
                                raise NotAnArchive(_describe_head(head))
                    fh.write(chunk)
            finally:
                # Writes land in the page cache (microseconds); the fsync can take an SD
                # card hundreds of milliseconds, so it runs off the loop, between samples.
                fh.flush()
                await asyncio.to_thread(os.fsync, fh.fileno())
        if not head_checked and written == size_bytes and not is_tar_header(head):
            raise NotAnArchive(_describe_head(head))
        if written < size_bytes:
            raise DownloadInterrupted(f"got {written} of {size_bytes} bytes")

    async def aclose(self) -> None:
        await self._http.aclose()


def _describe_head(head: bytes) -> str:
    text = head[:64].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "server answered HTML, not a tar archive"
    return "server answered something that is not a tar archive"
