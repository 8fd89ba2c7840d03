"""Release routes through a real uvicorn: device download with Range, access, admin API."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy import Engine

from cloud_sync.config import AuthSection, CloudConfig, DatabaseSection, ReleasesSection
from cloud_sync.http.app import create_app
from cloud_sync.registry import add_device
from edgetwin_contracts.signing import public_key_pem
from tests.cloud_sync.conftest import ADMIN, ADMIN_TOKEN, bearer, live_server


def _config(db_url: str, tmp_path: Path, key: Ed25519PrivateKey) -> CloudConfig:
    pub = tmp_path / "release.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    return CloudConfig(
        database=DatabaseSection(url=db_url),
        auth=AuthSection(admin_token=SecretStr(ADMIN_TOKEN)),
        releases=ReleasesSection(dir=tmp_path / "bundles", public_key=pub, evaluate_interval_s=0),
    )


def test_device_downloads_its_release_with_range_and_others_are_refused(
    rel_engine: Engine,
    db_url: str,
    tmp_path: Path,
    release_key: Ed25519PrivateKey,
    bundle_for: Callable[[str], Path],
) -> None:
    tokens = {name: add_device(rel_engine, name) for name in ("pump-1", "pump-2")}
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "report.md").write_text("# retrain pump-1\nMAE 0.21\n")
    app = create_app(_config(db_url, tmp_path, release_key), rel_engine)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        created = http.post(
            "/v1/releases",
            json={
                "bundle_dir": str(bundle_for("1.1.0")),
                "version": "1.1.0",
                "device": "pump-1",
                "report_dir": str(report_dir),
            },
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        release = created.json()
        sha, size = release["sha256"], release["size_bytes"]

        ack = http.get("/v1/twin", headers=bearer(tokens["pump-1"])).json()
        assert ack["desired"]["model"]["url"] == f"/v1/releases/{sha}/bundle"
        path = ack["desired"]["model"]["url"]

        whole = http.get(path, headers=bearer(tokens["pump-1"]))
        assert whole.status_code == 200
        assert whole.headers["etag"] == f'"{sha}"'
        assert int(whole.headers["content-length"]) == size
        assert whole.headers["accept-ranges"] == "bytes"
        # An interrupted download resumes where it stopped.
        first = http.get(path, headers={**bearer(tokens["pump-1"]), "Range": "bytes=0-999"})
        assert first.status_code == 206 and len(first.content) == 1000
        rest = http.get(
            path,
            headers={**bearer(tokens["pump-1"]), "Range": "bytes=1000-", "If-Range": f'"{sha}"'},
        )
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
        assert hashlib.sha256(first.content + rest.content).hexdigest() == sha
        assert whole.content == first.content + rest.content
        beyond = http.get(path, headers={**bearer(tokens["pump-1"]), "Range": f"bytes={size}-"})
        assert beyond.status_code == 416
        assert beyond.json()["error"] == "range_refused"
        assert beyond.headers["content-range"] == f"bytes */{size}"
        # A Range that is not one is refused in the same shape; a stale If-Range ignores it.
        units = http.get(path, headers={**bearer(tokens["pump-1"]), "Range": "items=0-9"})
        assert units.status_code == 400 and units.json()["error"] == "body_malformed"
        stale = {"Range": f"bytes={size}-", "If-Range": '"0000"'}
        whole_again = http.get(path, headers={**bearer(tokens["pump-1"]), **stale})
        assert whole_again.status_code == 200 and whole_again.content == whole.content

        assert http.get(path, headers=bearer(tokens["pump-2"])).status_code == 403
        assert http.get(path).status_code == 401
        assert http.get(path, headers=ADMIN).status_code == 200
        assert http.get(f"/v1/releases/{'0' * 64}/bundle", headers=ADMIN).status_code == 404
        assert http.get("/v1/releases/not-a-sha/bundle", headers=ADMIN).status_code == 404

        listed = http.get("/v1/releases", headers=ADMIN).json()
        assert [r["version"] for r in listed] == ["1.1.0"]
        assert http.get("/v1/releases", headers=bearer(tokens["pump-1"])).status_code == 403
        shown = http.get(f"/v1/releases/{release['id']}", headers=ADMIN).json()
        assert shown["assignments"][0]["device"] == "pump-1"
        md = http.get(f"/v1/releases/{release['id']}/report/report.md", headers=ADMIN)
        assert md.status_code == 200 and "MAE 0.21" in md.text
        assert (
            http.get(f"/v1/releases/{release['id']}/report/..%2Frelease.pub", headers=ADMIN)
        ).status_code == 404

        bad = http.post(
            "/v1/releases",
            json={"bundle_dir": str(tmp_path / "nope"), "version": "9.9.9", "device": "pump-1"},
            headers=ADMIN,
        )
        assert bad.status_code == 422 and "refused" in bad.json()["detail"]

        stopped = http.post(f"/v1/releases/{release['id']}/stop", headers=ADMIN)
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
        # Withdrawn: pump-1 may no longer fetch it.
        assert http.get(path, headers=bearer(tokens["pump-1"])).status_code == 403
