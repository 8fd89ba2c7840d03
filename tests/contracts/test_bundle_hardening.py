"""Tampered bundles an attack campaign sent through ``read_verified`` (issue 15, item 6):
special files, symlinks, duplicated keys, NaN, deep nesting and versions that are paths.
Each is one clear ``BundleRejected`` subclass, raised without blocking."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_contracts import signing
from edgetwin_contracts.bundle import read_verified
from edgetwin_contracts.errors import (
    BundleFileNotRegular,
    BundleRejected,
    ManifestInvalid,
    SignatureMissing,
)
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MAX_JSON_DEPTH,
    MODEL_FILE,
    SIGNATURE_FILE,
    max_nesting,
)


@pytest.fixture
def signed_raw(tmp_path: Path, release_key: Ed25519PrivateKey) -> Callable[[bytes], Path]:
    """A copy of the shipped bundle whose manifest is exactly these bytes, signed."""

    def build(manifest: bytes) -> Path:
        dest = tmp_path / f"bundle-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(DEFAULT_BUNDLE, dest)
        (dest / MANIFEST_FILE).write_bytes(manifest)
        (dest / SIGNATURE_FILE).write_bytes(signing.sign(release_key, manifest))
        return dest

    return build


def _manifest_text() -> str:
    return (DEFAULT_BUNDLE / MANIFEST_FILE).read_text()


@pytest.mark.parametrize("name", [MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE])
def test_a_fifo_is_refused_without_blocking(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey, name: str
) -> None:
    bundle = make_bundle()
    (bundle / name).unlink()
    os.mkfifo(bundle / name)
    # A blocking open would wait here forever for a writer.
    with pytest.raises(BundleFileNotRegular, match=f"{name} is a FIFO"):
        read_verified(bundle, release_key.public_key())


@pytest.mark.parametrize("name", [MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE])
def test_a_symlinked_file_is_refused(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey, name: str
) -> None:
    good = make_bundle()
    bundle = make_bundle()
    (bundle / name).unlink()
    (bundle / name).symlink_to(good / name)
    with pytest.raises(BundleFileNotRegular, match=f"{name} is a symlink"):
        read_verified(bundle, release_key.public_key())


def test_a_folder_in_place_of_a_file_is_refused(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey
) -> None:
    bundle = make_bundle()
    (bundle / MODEL_FILE).unlink()
    (bundle / MODEL_FILE).mkdir()
    with pytest.raises(BundleFileNotRegular, match="is a folder"):
        read_verified(bundle, release_key.public_key())


def test_a_missing_signature_is_still_reported_as_unsigned(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(SignatureMissing):
        read_verified(make_bundle(sign=False), release_key.public_key())


def test_a_duplicated_key_is_refused_under_a_valid_signature(
    signed_raw: Callable[[bytes], Path], release_key: Ed25519PrivateKey
) -> None:
    text = _manifest_text()
    version = json.loads(text)["model"]["version"]
    twice = text.replace(
        f'"version": "{version}"', f'"version": "{version}",\n    "version": "99.0.0"', 1
    )
    assert twice != text
    with pytest.raises(ManifestInvalid, match="'version' appears twice"):
        read_verified(signed_raw(twice.encode()), release_key.public_key())


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_golden_vector_is_refused(
    signed_raw: Callable[[bytes], Path], release_key: Ed25519PrivateKey, literal: str
) -> None:
    data = json.loads(_manifest_text())
    data["golden"]["vectors"][0]["input"][0] = "@@"
    text = json.dumps(data, indent=2, sort_keys=True).replace('"@@"', literal)
    with pytest.raises(ManifestInvalid) as caught:
        read_verified(signed_raw(text.encode()), release_key.public_key())
    assert "golden" in str(caught.value) or "not a JSON number" in str(caught.value)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000, 200_000])
def test_deep_nesting_is_refused_cleanly(
    signed_raw: Callable[[bytes], Path], release_key: Ed25519PrivateKey, depth: int
) -> None:
    data = json.loads(_manifest_text())
    data["training"]["notes"] = {"deep": "@@"}
    text = json.dumps(data).replace('"@@"', "[" * depth + "]" * depth)
    with pytest.raises(ManifestInvalid, match="levels deep"):
        read_verified(signed_raw(text.encode()), release_key.public_key())


@pytest.mark.parametrize(
    "version",
    ["../../1.0.1", "9.9.9/../../../PWNED", ".", "..", "1.0 1", "1.0.1\x00", "", "v" * 65],
)
def test_a_version_that_is_not_a_plain_version_is_refused(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey, version: str
) -> None:
    def edit(data: dict[str, object]) -> None:
        data["model"]["version"] = version  # type: ignore[index]

    with pytest.raises(ManifestInvalid, match=r"model\.version"):
        read_verified(make_bundle(edit_manifest=edit), release_key.public_key())


def test_plain_versions_still_verify(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey
) -> None:
    for version in ("1.0.1", "2026.12.07-rc_1", "1..2"):

        def edit(data: dict[str, object], version: str = version) -> None:
            data["model"]["version"] = version  # type: ignore[index]

        verified = read_verified(make_bundle(edit_manifest=edit), release_key.public_key())
        assert verified.manifest.model.version == version
        assert len(verified.signature) == signing.SIGNATURE_BYTES


def test_nesting_is_counted_outside_strings() -> None:
    assert max_nesting('{"a": "[[[[{{{", "b": [[1]], "c": "\\"[["}') == 3
    assert max_nesting("[]") == 1


def test_every_rejection_is_a_bundle_rejected() -> None:
    assert issubclass(BundleFileNotRegular, BundleRejected)
