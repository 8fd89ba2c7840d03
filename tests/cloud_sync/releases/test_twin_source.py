"""Which twin the cloud's what-if uses for a device (cloud_sync.whatif.TwinCache), on
both databases: the released twin it reports in service, else its fine-tuned twin, else
the shipped default; a released twin that does not verify is named, never replaced."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.errors import DeviceNotFound, TwinStateMissing
from cloud_sync.registry import add_device
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.signing import sign_bundle
from cloud_sync.releases.store import BundleStore
from cloud_sync.training.twin import device_twin_dir
from cloud_sync.whatif import TwinCache
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts.manifest import MODEL_FILE
from edgetwin_contracts.signing import generate_private_key, public_key_pem, save_keypair
from tests.cloud_sync.releases.conftest import TWIN_NAME, report


def _sha(folder: Path) -> str:
    return hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()


@pytest.fixture
def public_key(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(public_key_pem(release_key.public_key()))
    return path


def test_the_twin_in_service_then_the_fine_tuned_then_the_shipped_default(
    rel_engine: Engine,
    store: BundleStore,
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
    public_key: Path,
    tmp_path: Path,
) -> None:
    add_device(rel_engine, "pump-1")
    publish_release(
        rel_engine, store, twin_bundle, version="1.1.0", device="pump-1", private_key=release_key
    )
    reports = tmp_path / "reports"
    cache = TwinCache(reports, public_key, store)
    in_service = {"name": TWIN_NAME, "version": "1.1.0", "sha256": _sha(twin_bundle)}

    report(rel_engine, "pump-1", twin=in_service)
    twin, source = cache.for_device("pump-1", rel_engine)
    assert source.startswith(f"released twin {TWIN_NAME} 1.1.0 (release 1, in service)")
    assert twin.manifest.model.version == "1.1.0"

    # Same name and version, another model file: not this release.
    report(rel_engine, "pump-1", twin={**in_service, "sha256": "00" * 32})
    assert cache.for_device("pump-1", rel_engine)[1].startswith("shipped default twin")
    # A fine-tuned twin waiting for its release comes before the shipped default.
    shutil.copytree(twin_bundle, device_twin_dir(reports, "pump-1"))
    sign_bundle(device_twin_dir(reports, "pump-1"), release_key, version="1.2.0")
    assert cache.for_device("pump-1", rel_engine)[1].startswith(f"device twin {TWIN_NAME} 1.2.0")
    # The shipped default in service is named as such, before the fine-tuned one.
    report(rel_engine, "pump-1", twin={**in_service, "sha256": _sha(DEFAULT_TWIN_BUNDLE)})
    source = cache.for_device("pump-1", rel_engine)[1]
    assert source.startswith("shipped default twin") and "in service on the device" in source

    with pytest.raises(DeviceNotFound):
        cache.for_device("nobody", rel_engine)


def test_a_released_twin_that_does_not_verify_is_named(
    rel_engine: Engine,
    store: BundleStore,
    twin_bundle: Path,
    release_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    add_device(rel_engine, "pump-1")
    publish_release(
        rel_engine, store, twin_bundle, version="1.1.0", device="pump-1", private_key=release_key
    )
    report(
        rel_engine,
        "pump-1",
        twin={"name": TWIN_NAME, "version": "1.1.0", "sha256": _sha(twin_bundle)},
    )
    # The cloud's [releases] public_key changed since: the stored bundle no longer verifies.
    other = save_keypair(generate_private_key(), tmp_path / "other", "release")
    cache = TwinCache(tmp_path / "reports", other.with_suffix(".pub"), store)
    with pytest.raises(TwinStateMissing, match=r"released twin pump-twin 1\.1\.0 \(release 1\)"):
        cache.for_device("pump-1", rel_engine)
