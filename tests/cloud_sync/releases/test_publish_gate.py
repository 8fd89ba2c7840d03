"""The publish gate on tampered folders (issue 15, item 6), on SQLite and PostgreSQL:
special files never block it, versions are plain, and nothing is released."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.errors import RequestRejected
from cloud_sync.registry import add_device
from cloud_sync.releases.errors import BundleRefused, ReleaseInvalid
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import list_releases
from cloud_sync.releases.store import BundleStore
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

GUARD_S = 60.0


def _publish_in_thread(call: Callable[[], object]) -> BaseException | object:
    """Run ``call`` on a thread; a hang fails the test at GUARD_S instead of stalling it."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert not thread.is_alive(), "publish blocked"
    return outcome[0]


@pytest.mark.parametrize("sign", [False, True], ids=["signed", "re-signed"])
@pytest.mark.parametrize("name", [MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE])
def test_a_fifo_in_the_bundle_folder_is_refused_without_blocking(
    rel_engine: Engine,
    store: BundleStore,
    make_bundle: Callable[..., Path],
    release_key: Ed25519PrivateKey,
    name: str,
    sign: bool,
) -> None:
    add_device(rel_engine, "pump-1")
    bundle = make_bundle()
    (bundle / name).unlink()
    os.mkfifo(bundle / name)
    outcome = _publish_in_thread(
        lambda: publish_release(
            rel_engine,
            store,
            bundle,
            version="1.0.0",
            device="pump-1",
            private_key=release_key if sign else None,
        )
    )
    if sign and name == SIGNATURE_FILE:
        # Re-signing never reads the old signature: the folder's FIFO is simply not used.
        assert not isinstance(outcome, BaseException), outcome
        return
    assert isinstance(outcome, BundleRefused), outcome
    assert f"{name} is a FIFO" in str(outcome)
    assert list_releases(rel_engine) == []


def test_extra_special_files_in_the_folder_are_not_copied_when_re_signing(
    rel_engine: Engine,
    store: BundleStore,
    make_bundle: Callable[..., Path],
    release_key: Ed25519PrivateKey,
) -> None:
    add_device(rel_engine, "pump-1")
    bundle = make_bundle()
    os.mkfifo(bundle / "notes.fifo")
    (bundle / "elsewhere").symlink_to("/etc/passwd")
    outcome = _publish_in_thread(
        lambda: publish_release(
            rel_engine, store, bundle, version="1.0.1", device="pump-1", private_key=release_key
        )
    )
    assert not isinstance(outcome, BaseException), outcome
    assert [r.version for r in list_releases(rel_engine)] == ["1.0.1"]


@pytest.mark.parametrize(
    "version", ["9.9.9/../../../../../tmp/PWNED", "../../1.0.1", ".", "..", "1.0 1", "é1"]
)
def test_a_version_that_is_not_plain_is_refused(
    rel_engine: Engine,
    store: BundleStore,
    make_bundle: Callable[..., Path],
    release_key: Ed25519PrivateKey,
    version: str,
) -> None:
    add_device(rel_engine, "pump-1")
    with pytest.raises(ReleaseInvalid, match="version"):
        publish_release(
            rel_engine,
            store,
            make_bundle(),
            version=version,
            device="pump-1",
            private_key=release_key,
        )
    assert list_releases(rel_engine) == []
    assert issubclass(ReleaseInvalid, RequestRejected)
