"""Stateless cloud replicas (issue 15, item 12): two real `cloud-sync serve` processes on
one PostgreSQL database with [releases] store = "database", each with a folder of its
own. A release published through one downloads through the other (whole and by Range);
a bundle folder holding a FIFO is refused at once and both replicas still shut down
cleanly. Both replicas run the notification job on the same database: a fleet alarm
and its clearing reach a real webhook receiver once each."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgetwin_common.testing import wait_until
from edgetwin_contracts.manifest import MANIFEST_FILE
from edgetwin_contracts.signing import public_key_pem
from tests.cloud_sync.conftest import alarm_event, batch, post_batch
from tests.cloud_sync.webhooks import Receiver, webhook_receiver
from tests.e2e.helpers import (
    ADMIN,
    GUARD_S,
    bearer,
    cloud_server,
    register_device,
    write_cloud_toml,
)


def _replica_toml(path: Path, db_url: str, public_key: Path, cache: Path) -> Path:
    write_cloud_toml(path, db_url)
    with path.open("a") as toml:
        toml.write(
            f'\n[releases]\nstore = "database"\ndir = "{cache}"\n'
            f'public_key = "{public_key}"\nevaluate_interval_s = 0\n'
        )
    return path


def _bundle(make_bundle: Callable[..., Path], version: str) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["model"]["version"] = version

    return make_bundle(edit_manifest=edit)


def test_a_release_published_through_one_replica_downloads_through_the_other(
    pg_db_url: str,
    tmp_path: Path,
    release_key: Ed25519PrivateKey,
    make_bundle: Callable[..., Path],
) -> None:
    public_key = tmp_path / "release.pub"
    public_key.write_bytes(public_key_pem(release_key.public_key()))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a = _replica_toml(
        tmp_path / "a" / "cloud.toml", pg_db_url, public_key, tmp_path / "cache-a"
    )
    config_b = _replica_toml(
        tmp_path / "b" / "cloud.toml", pg_db_url, public_key, tmp_path / "cache-b"
    )
    token = register_device(config_a, "pump-1")
    fifo_bundle = _bundle(make_bundle, "1.2.0")
    (fifo_bundle / MANIFEST_FILE).unlink()
    os.mkfifo(fifo_bundle / MANIFEST_FILE)

    with (
        cloud_server(config_a, tmp_path, "replica-a") as a,
        cloud_server(config_b, tmp_path, "replica-b") as b,
        httpx.Client(base_url=a.url, timeout=GUARD_S) as via_a,
        httpx.Client(base_url=b.url, timeout=GUARD_S) as via_b,
    ):
        published = via_a.post(
            "/v1/releases",
            json={
                "bundle_dir": str(_bundle(make_bundle, "1.1.0")),
                "version": "1.1.0",
                "device": "pump-1",
            },
            headers=ADMIN,
        )
        assert published.status_code == 201, published.text
        sha = published.json()["sha256"]
        assert not (tmp_path / "cache-b").exists()

        desired = via_b.get("/v1/twin", headers=bearer(token)).json()["desired"]
        assert desired["model"]["sha256"] == sha
        whole = via_b.get(desired["model"]["url"], headers=bearer(token))
        assert whole.status_code == 200, whole.text
        assert hashlib.sha256(whole.content).hexdigest() == sha
        tail = via_b.get(desired["model"]["url"], headers={**bearer(token), "Range": "bytes=1000-"})
        assert tail.status_code == 206
        assert tail.content == whole.content[1000:]
        assert (tmp_path / "cache-b" / sha[:2] / f"{sha}.tar").is_file()
        # Another device may not have it, whichever replica it asks.
        other = register_device(config_b, "pump-2")
        assert via_b.get(desired["model"]["url"], headers=bearer(other)).status_code == 403

        # A FIFO where the manifest should be: refused at once, nothing blocks.
        refused = via_a.post(
            "/v1/releases",
            json={"bundle_dir": str(fifo_bundle), "version": "1.2.0", "device": "pump-1"},
            headers=ADMIN,
        )
        assert refused.status_code == 422, refused.text
        assert "manifest.json is a FIFO" in refused.text
        # And a version that is a path never becomes a release.
        path_version = via_b.post(
            "/v1/releases",
            json={
                "bundle_dir": str(_bundle(make_bundle, "1.3.0")),
                "version": "9.9.9/../../PWNED",
                "device": "pump-1",
            },
            headers=ADMIN,
        )
        assert path_version.status_code == 422, path_version.text
        assert path_version.json()["detail"][0]["loc"] == ["body", "version"]
        assert [r["version"] for r in via_b.get("/v1/releases", headers=ADMIN).json()] == ["1.1.0"]
        a.terminate()
        b.terminate()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as state:
        yield state


def test_two_serving_replicas_tell_a_fleet_alarm_once_and_its_clearing_once(
    pg_db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    configs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = write_cloud_toml(tmp_path / name / "cloud.toml", pg_db_url)
        with config.open("a") as toml:
            toml.write(
                f'\n[notifications]\nwebhooks = [{{ url = "{receiver.url}" }}]\n'
                "check_interval_s = 0.05\n"
            )
        configs.append(config)
    token = register_device(configs[0], "pump-1")
    with (
        cloud_server(configs[0], tmp_path, "replica-a") as a,
        cloud_server(configs[1], tmp_path, "replica-b") as b,
        httpx.Client(base_url=a.url, timeout=GUARD_S) as via_a,
        httpx.Client(base_url=b.url, timeout=GUARD_S) as via_b,
    ):
        assert post_batch(via_a, token, batch(1, alarms=[alarm_event(4)])).status_code == 200
        wait_until(lambda: receiver.events(), "the raised notification")
        cleared = batch(2, alarms=[alarm_event(4, kind="cleared")])
        assert post_batch(via_b, token, cleared).status_code == 200
        wait_until(lambda: len(receiver.events()) == 2, "the cleared notification")
        # Both replicas keep passing over the same conditions: nothing more is told.
        for http in (via_a, via_b):
            pending = http.get("/metrics", headers=ADMIN).text
            assert "cloudsync_notifications_pending 0.0" in pending
        a.terminate()
        b.terminate()
    assert receiver.events() == [
        ("raised", "fleet_alarm:pump-1:4"),
        ("cleared", "fleet_alarm:pump-1:4"),
    ]
    assert len(receiver.calls) == 2
