"""A release server on 127.0.0.1 (real uvicorn, port 0) and test releases built from
the shipped bundle.

The server serves tar archives at /v1/releases/<name>/bundle with the device's bearer
token, honours ``Range: bytes=N-`` (206), and can misbehave per release: serve a
truncated body, an HTML page, or drop the connection half-way once.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_contracts.batch import ModelRelease
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, Normalization

TOKEN = "ota-device-token"


def tar_bundle(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The three bundle files of ``folder`` as an uncompressed tar (plus ``extra``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        files = {n: (folder / n).read_bytes() for n in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE)}
        files.update(extra or {})
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def versioned(version: str) -> Any:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = version

    return edit


def degraded(version: str, min_std_abs: float = 10.0) -> Any:
    """A real, consistently signed model that forecasts badly: the shipped network with
    a std floor so large that every window looks flat to it. Its golden vectors are
    recomputed, so only live data shows it is worse."""

    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = version
        m["input"]["normalization"]["min_std_abs"] = min_std_abs
        norm = Normalization.model_validate(m["input"]["normalization"])
        fc = Forecaster(
            (DEFAULT_BUNDLE / MODEL_FILE).read_bytes(),
            window_length=m["input"]["window_length"],
            horizons=m["output"]["horizons"],
            normalization=norm,
        )
        for vec in m["golden"]["vectors"]:
            out = fc.forecast(np.asarray(vec["input"], dtype=np.float64))
            vec["output"] = out.tolist()
            vec["output_q"] = fc.last_output_q.astype(int).tolist()

    return edit


@dataclass
class Served:
    data: bytes
    mode: str = "ok"
    """ok | truncate (serve the first half as if complete) | html | drop_once."""
    content_type: str = "application/x-tar"


@dataclass
class ReleaseServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(name, Range header) per request."""
    url: str = ""

    def add(self, name: str, data: bytes, version: str, **kw: Any) -> ModelRelease:
        self.files[name] = Served(data, **kw)
        return ModelRelease(
            version=version,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            url=f"/v1/releases/{name}/bundle",
        )

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/releases/{name}/bundle")
        async def bundle(name: str, request: Request) -> Response:
            self.requests.append((name, request.headers.get("range")))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return Response(status_code=401)
            served = self.files.get(name)
            if served is None:
                return Response(status_code=404)
            if served.mode == "html":
                page = b"<!DOCTYPE html><html><body>Sign in to the portal</body></html>"
                return Response(page, media_type="text/html")
            data = served.data
            if served.mode == "truncate":
                data = data[: len(data) // 2]
            start = 0
            rng = request.headers.get("range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    return Response(status_code=416)
            body = data[start:]
            status = 206 if start else 200
            headers = {"Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            if served.mode == "drop_once":
                served.mode = "ok"

                async def half() -> Any:
                    yield body[: len(body) // 2]

                return StreamingResponse(
                    half(), status_code=status, headers=headers, media_type=served.content_type
                )
            return Response(
                body, status_code=status, headers=headers, media_type=served.content_type
            )

        return app

    @contextmanager
    def serve(self) -> Iterator[str]:
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="releases", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self.url
        finally:
            server.should_exit = True
            thread.join(10)


def manifest_of(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MANIFEST_FILE).read_bytes())
    return data
