"""The bundle store: deterministic archives, idempotent puts, refused signatures."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.releases.errors import BundleNotStored, BundleRefused
from cloud_sync.releases.signing import sign_bundle
from cloud_sync.releases.store import BundleStore
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_contracts import signing
from edgetwin_contracts.bundle import read_verified


def test_same_bundle_gives_the_same_archive(tmp_path: Path) -> None:
    a = BundleStore(tmp_path / "a", default_public_key()).put(DEFAULT_BUNDLE)
    b = BundleStore(tmp_path / "b", default_public_key()).put(DEFAULT_BUNDLE)
    assert a.sha256 == b.sha256 and a.path.read_bytes() == b.path.read_bytes()
    assert a.path == tmp_path / "a" / a.sha256[:2] / f"{a.sha256}.tar"
    assert hashlib.sha256(a.path.read_bytes()).hexdigest() == a.sha256
    assert a.size_bytes == a.path.stat().st_size
    with tarfile.open(a.path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["manifest.json", "manifest.sig", "model.tflite"]
        assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}
        for m in members:
            extracted = tar.extractfile(m)
            assert extracted is not None
            assert extracted.read() == (DEFAULT_BUNDLE / m.name).read_bytes()
    assert a.manifest.model.version == "1.0.0"


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = BundleStore(tmp_path, default_public_key())
    first = store.put(DEFAULT_BUNDLE)
    mtime = first.path.stat().st_mtime_ns
    again = store.put(DEFAULT_BUNDLE)
    assert again == first and first.path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{first.sha256}.tar"]
    assert store.get(first.sha256).manifest == first.manifest
    with store.open(first.sha256) as fh:
        assert fh.read() == first.path.read_bytes()


def test_bad_signature_is_refused(
    tmp_path: Path, make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey
) -> None:
    store = BundleStore(tmp_path / "store", release_key.public_key())
    # The shipped bundle is signed by another key than the one this store trusts.
    with pytest.raises(BundleRefused, match="does not verify"):
        store.put(DEFAULT_BUNDLE)
    tampered = make_bundle(edit_model=lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    with pytest.raises(BundleRefused, match="sha256"):
        store.put(tampered)
    with pytest.raises(BundleRefused, match="unsigned"):
        store.put(make_bundle(sign=False))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.tar"))


def test_unknown_sha_is_not_stored(tmp_path: Path) -> None:
    store = BundleStore(tmp_path, None)
    with pytest.raises(BundleNotStored):
        store.open("0" * 64)
    with pytest.raises(BundleNotStored):
        store.path_of("../../etc/passwd")


def test_sign_bundle_resigns_with_the_release_key(
    tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    key = signing.generate_private_key()
    bundle = make_bundle(sign=False)
    sign_bundle(bundle, key, version="2.0.0")
    verified = read_verified(bundle, key.public_key())
    assert verified.manifest.model.version == "2.0.0"
    assert verified.manifest.signing.key_id == signing.key_id(key.public_key())
    stored = BundleStore(tmp_path / "s", key.public_key()).put(bundle)
    with tarfile.open(fileobj=io.BytesIO(stored.path.read_bytes())) as tar:
        assert len(tar.getmembers()) == 3
