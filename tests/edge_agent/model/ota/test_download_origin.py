"""The device token goes to the configured cloud's origin only: two real uvicorn servers
on 127.0.0.1 (two ports: two origins), the cloud and another host that serves the same
archive and records the Authorization header of every request it gets."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from edge_agent.model.ota.download import Downloader
from edge_agent.model.shipped import DEFAULT_BUNDLE

from .releases import tar_bundle

TOKEN = "device-token-0123456789"
ARCHIVE = tar_bundle(DEFAULT_BUNDLE)


class Host:
    """Serves ARCHIVE at /bundle.tar, redirects /to?url=... there, and records
    (path, Authorization) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.url = ""
        app = FastAPI()

        @app.get("/bundle.tar")
        async def bundle(request: Request) -> Response:
            self.seen.append((request.url.path, request.headers.get("authorization")))
            return Response(ARCHIVE, media_type="application/x-tar")

        @app.get("/to")
        async def to(url: str, request: Request) -> Response:
            self.seen.append((request.url.path, request.headers.get("authorization")))
            return RedirectResponse(url, status_code=302)

        self.app = app

    @contextmanager
    def serve(self) -> Iterator[str]:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            yield self.url
        finally:
            server.should_exit = True
            thread.join(10)


@contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    cloud, other = Host(), Host()
    with cloud.serve(), other.serve():
        yield cloud, other


def fetch(cloud_url: str, path: str, dest: Path) -> None:
    async def main() -> None:
        downloader = Downloader(cloud_url, TOKEN, 10.0)
        try:
            await downloader.fetch(path, dest, len(ARCHIVE))
        finally:
            await downloader.aclose()

    asyncio.run(main())
    assert dest.read_bytes() == ARCHIVE


def test_the_token_goes_to_the_cloud_for_a_path_on_it(tmp_path: Path) -> None:
    with two_hosts() as (cloud, other):
        fetch(cloud.url, "/bundle.tar", tmp_path / "a.tar")
        fetch(cloud.url + "/", f"{cloud.url}/bundle.tar", tmp_path / "b.tar")  # absolute
    assert cloud.seen == [("/bundle.tar", f"Bearer {TOKEN}")] * 2
    assert other.seen == []


def test_an_absolute_url_on_another_origin_gets_no_credentials(tmp_path: Path) -> None:
    with two_hosts() as (cloud, other):
        fetch(cloud.url, f"{other.url}/bundle.tar", tmp_path / "a.tar")
    assert other.seen == [("/bundle.tar", None)]
    assert cloud.seen == []


def test_a_redirect_off_the_cloud_drops_the_token(tmp_path: Path) -> None:
    with two_hosts() as (cloud, other):
        fetch(cloud.url, f"/to?url={other.url}/bundle.tar", tmp_path / "a.tar")
        # And a redirect from elsewhere back to the cloud does not bring it back.
        fetch(cloud.url, f"{other.url}/to?url={cloud.url}/bundle.tar", tmp_path / "b.tar")
    assert cloud.seen[0] == ("/to", f"Bearer {TOKEN}")
    assert other.seen[0] == ("/bundle.tar", None)
    assert other.seen[1] == ("/to", None)
    assert cloud.seen[1] == ("/bundle.tar", None)


def test_the_same_host_on_another_port_or_scheme_is_another_origin() -> None:
    downloader = Downloader("https://cloud.example.com", TOKEN, 10.0)
    try:
        assert downloader.credentials_for("https://cloud.example.com/x")
        assert downloader.credentials_for("https://CLOUD.example.com:443/x")
        assert not downloader.credentials_for("http://cloud.example.com/x")
        assert not downloader.credentials_for("https://cloud.example.com:8443/x")
        assert not downloader.credentials_for("https://cloud.example.com.evil.example/x")
    finally:
        asyncio.run(downloader.aclose())
