"""A twin release through a real uvicorn on both databases: published over the API, the
device's batch ack carries desired.twin, the archive downloads and verifies with the
device's own OTA code, the reported twin_update completes the rollout, and the cloud's
what-if then answers with that released twin. Operator PATCHes naming a release of the
other kind are refused, naming the field."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.http.app import create_app
from cloud_sync.registry import add_device
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.signing import sign_bundle
from cloud_sync.releases.store import BundleStore
from edge_agent.model.ota.archive import check_archive, extract_bundle
from edge_agent.twin.model import load_twin
from edgetwin_contracts.bundle import MAX_MODEL_BYTES
from tests.cloud_sync.conftest import ADMIN, batch, bearer, live_server, post_batch, reported
from tests.cloud_sync.releases.conftest import TWIN_NAME
from tests.cloud_sync.releases.test_http import _config
from tests.cloud_sync.test_whatif import _pump_summaries

SCENARIO = {"controls": {"load": [{"value": 0.9, "minutes": 30}, {"value": 0.5, "minutes": 30}]}}


def test_a_twin_release_reaches_the_device_and_answers_the_clouds_what_if(
    rel_engine: Engine,
    db_url: str,
    tmp_path: Path,
    release_key: Ed25519PrivateKey,
    twin_bundle: Path,
) -> None:
    tokens = {name: add_device(rel_engine, name) for name in ("pump-1", "pump-2")}
    signed = tmp_path / "signed-twin"
    shutil.copytree(twin_bundle, signed)
    sign_bundle(signed, release_key, version="1.1.0")
    app = create_app(_config(db_url, tmp_path, release_key), rel_engine)
    device = bearer(tokens["pump-1"])
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        created = http.post(
            "/v1/releases",
            json={"bundle_dir": str(signed), "version": "1.1.0", "device": "pump-1"},
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        release = created.json()
        assert release["kind"] == "twin" and release["model_name"] == TWIN_NAME

        ack = post_batch(http, tokens["pump-1"], batch(1, alarms=[], summaries=_pump_summaries(20)))
        assert ack.status_code == 200, ack.text
        desired = ack.json()["desired"]
        assert desired["model"] is None and desired["model_version"] is None
        assert desired["twin_version"] == "1.1.0"
        twin = desired["twin"]
        assert twin["url"] == f"/v1/releases/{release['sha256']}/bundle"

        # The device fetches and checks it with its own OTA code, then loads the twin.
        archive = http.get(twin["url"], headers=device)
        assert archive.status_code == 200
        assert hashlib.sha256(archive.content).hexdigest() == twin["sha256"]
        path = tmp_path / "download.tar"
        path.write_bytes(archive.content)
        check_archive(path, twin["size_bytes"], twin["sha256"])
        extract_bundle(path, tmp_path / "unpacked", MAX_MODEL_BYTES)
        loaded = load_twin(tmp_path / "unpacked", release_key.public_key())
        assert loaded.manifest.model.version == "1.1.0" and loaded.spec.controls == ["load"]
        other = http.get(twin["url"], headers=bearer(tokens["pump-2"]))
        assert other.status_code == 403

        # Before the device runs it, the cloud answers with the shipped default twin.
        before = http.post("/v1/devices/pump-1/whatif", json=SCENARIO, headers=ADMIN)
        assert before.status_code == 200, before.text
        assert before.json()["twin_source"].startswith("shipped default twin")

        in_service = {
            "name": TWIN_NAME,
            "version": "1.1.0",
            "sha256": loaded.manifest.file.sha256,
        }
        body = batch(
            2,
            alarms=[],
            summaries=[],
            reported=reported(
                1,
                desired_applied=desired["version"],
                twin=in_service,
                twin_update={"state": "installed", "version": "1.1.0"},
            ),
        )
        assert post_batch(http, tokens["pump-1"], body).status_code == 200
        events = http.post("/v1/releases/evaluate", headers=ADMIN).json()["events"]
        kinds = {(e["kind"], e.get("device")) for e in events}
        assert {("installed", "pump-1"), ("completed", None)} <= kinds
        shown = http.get(f"/v1/releases/{release['id']}", headers=ADMIN).json()
        assert shown["state"] == "complete" and shown["kind"] == "twin"

        after = http.post("/v1/devices/pump-1/whatif", json=SCENARIO, headers=ADMIN)
        assert after.status_code == 200, after.text
        got = after.json()
        assert got["twin_source"].startswith(f"released twin {TWIN_NAME} 1.1.0")
        assert got["answer"]["steps"] == 60
        assert after.json()["answer"] != before.json()["answer"]  # another model answered

        page = http.get("/", headers=ADMIN).text
        assert 'class="twin-model">1.1.0 / 1.1.0' in page
        assert '<td class="kind">twin</td>' in page
        rows = {r["name"]: r for r in http.get("/v1/devices", headers=ADMIN).json()}
        assert rows["pump-1"]["twin_version"] == "1.1.0"
        assert rows["pump-1"]["twin_update"] == "installed"


def test_a_patch_naming_a_release_of_the_other_kind_is_refused(
    rel_engine: Engine,
    db_url: str,
    tmp_path: Path,
    release_key: Ed25519PrivateKey,
    twin_bundle: Path,
    bundle_for: Callable[[str], Path],
) -> None:
    add_device(rel_engine, "pump-1")
    store = BundleStore(tmp_path / "bundles", release_key.public_key())
    publish_release(rel_engine, store, bundle_for("2.0.0"), version="2.0.0", device="pump-1")
    publish_release(
        rel_engine, store, twin_bundle, version="1.1.0", device="pump-1", private_key=release_key
    )
    app = create_app(_config(db_url, tmp_path, release_key), rel_engine)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        current = http.get("/v1/devices/pump-1/desired", headers=ADMIN).json()
        match = {**ADMIN, "If-Match": f'"{current["version"]}"'}
        wrong = [("twin_version", "2.0.0", "model"), ("model_version", "1.1.0", "twin")]
        for key, version, kind in wrong:
            refused = http.patch("/v1/devices/pump-1/desired", json={key: version}, headers=match)
            assert refused.status_code == 422, refused.text
            answer = refused.json()
            assert answer["error"] == "release_kind_mismatch"
            problem = answer["detail"][0]
            assert problem["loc"] == ["body", key]
            assert f"release {version} is a {kind} release" in problem["msg"]
        assert http.get("/v1/devices/pump-1/desired", headers=ADMIN).json() == current

        # The right kind, an unknown version (left to the device) and null all pass.
        changes = [{"twin_version": v} for v in ("1.1.0", "9.9.9", None)]
        for change in changes:
            version = http.get("/v1/devices/pump-1/desired", headers=ADMIN).json()["version"]
            done = http.patch(
                "/v1/devices/pump-1/desired",
                json=change,
                headers={**ADMIN, "If-Match": f'"{version}"'},
            )
            assert done.status_code == 200, done.text
            assert done.json()["twin_version"] == change["twin_version"]
            assert done.json()["model_version"] == "2.0.0"  # the model's slot untouched
