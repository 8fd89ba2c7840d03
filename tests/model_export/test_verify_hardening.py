"""``model-export verify`` on the bundles an attack campaign made (issue 15, item 6): one
clear rejection each (exit 1, the reason on stderr, no traceback), and never a hang."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgetwin_contracts import signing
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE
from tests.model_export.test_export_cli import run


@pytest.fixture
def public_key(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(signing.public_key_pem(release_key.public_key()))
    return path


def _resign(bundle: Path, key: Ed25519PrivateKey, manifest: bytes) -> None:
    (bundle / MANIFEST_FILE).write_bytes(manifest)
    (bundle / SIGNATURE_FILE).write_bytes(signing.sign(key, manifest))


def _fifo(bundle: Path, key: Ed25519PrivateKey) -> None:
    (bundle / MANIFEST_FILE).unlink()
    os.mkfifo(bundle / MANIFEST_FILE)


def _symlink(bundle: Path, key: Ed25519PrivateKey) -> None:
    model = bundle / MODEL_FILE
    real = bundle.parent / f"{bundle.name}-model.tflite"
    model.rename(real)
    model.symlink_to(real)


def _path_version(bundle: Path, key: Ed25519PrivateKey) -> None:
    data = json.loads((bundle / MANIFEST_FILE).read_text())
    data["model"]["version"] = "../../1.0.1"
    _resign(bundle, key, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _duplicate_key(bundle: Path, key: Ed25519PrivateKey) -> None:
    text = (bundle / MANIFEST_FILE).read_text()
    _resign(
        bundle,
        key,
        text.replace('"schema_version": 1', '"schema_version": 1, "schema_version": 1').encode(),
    )


def _nan_golden(bundle: Path, key: Ed25519PrivateKey) -> None:
    data = json.loads((bundle / MANIFEST_FILE).read_text())
    data["golden"]["vectors"][0]["output"][0] = "@@"
    _resign(bundle, key, json.dumps(data).replace('"@@"', "NaN").encode())


def _deep(bundle: Path, key: Ed25519PrivateKey) -> None:
    data = json.loads((bundle / MANIFEST_FILE).read_text())
    data["training"]["notes"] = {"x": "@@"}
    _resign(bundle, key, json.dumps(data).replace('"@@"', "[" * 100_000 + "]" * 100_000).encode())


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(_fifo, "manifest.json is a FIFO", id="fifo-manifest"),
        pytest.param(_symlink, "model.tflite is a symlink", id="symlinked-model"),
        pytest.param(_path_version, "model.version", id="version-is-a-path"),
        pytest.param(_duplicate_key, "appears twice", id="duplicate-key"),
        pytest.param(_nan_golden, "NaN is not a JSON number", id="nan-golden-vector"),
        pytest.param(_deep, "levels deep", id="deep-nesting"),
    ],
)
def test_verify_refuses_each_with_one_clear_reason(
    make_bundle: Callable[..., Path],
    release_key: Ed25519PrivateKey,
    public_key: Path,
    tamper: Callable[[Path, Ed25519PrivateKey], None],
    reason: str,
) -> None:
    bundle = make_bundle()
    tamper(bundle, release_key)
    result = run("verify", bundle, "--public-key", public_key)  # run() times out at 300 s
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_refuses_a_fifo_manifest_without_blocking(
    make_bundle: Callable[..., Path], release_key: Ed25519PrivateKey
) -> None:
    bundle = make_bundle()
    _fifo(bundle, release_key)
    result = run("inspect", bundle)
    assert result.returncode in (1, 2), (result.stdout, result.stderr)
    assert "manifest.json is a FIFO" in result.stderr
    assert "Traceback" not in result.stderr
