"""Shared fixtures: a release key of the test's own and bundles re-signed with it.

Tampered bundles are made from the shipped default bundle by byte and JSON surgery, so
these tests need no TensorFlow and also run in the tflite-runtime venv.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_contracts import signing
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

# Browser fixtures (headless Chromium) for the page tests; imported so pytest sees them.
pytest_plugins = ["tests.browser"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO = Path(__file__).resolve().parent.parent


def require(condition: bool, reason: str, *, module: bool = False) -> None:
    """Skip with a printed reason where a prerequisite is missing; under CI=true, fail.
    ``module``: called at import time of a test module (skips the whole module)."""
    if condition:
        return
    print(f"\nprerequisite missing: {reason}")
    if IN_CI:
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


@pytest.fixture(scope="session")
def release_key() -> Ed25519PrivateKey:
    return signing.generate_private_key()


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, release_key: Ed25519PrivateKey) -> BundleFactory:
    """Copy the shipped bundle, optionally edit its manifest dict or model bytes, and
    re-sign the manifest with ``release_key`` (unless sign=False)."""
    counter = iter(range(1_000_000))

    def build(
        edit_manifest: Callable[[dict[str, Any]], None] | None = None,
        edit_model: Callable[[bytes], bytes] | None = None,
        sign: bool = True,
        source: Path = DEFAULT_BUNDLE,
    ) -> Path:
        dest = tmp_path / f"bundle-{next(counter)}"
        shutil.copytree(source, dest)
        (dest / SIGNATURE_FILE).unlink(missing_ok=True)
        manifest_bytes = (dest / MANIFEST_FILE).read_bytes()
        if edit_manifest is not None:
            data = json.loads(manifest_bytes)
            edit_manifest(data)
            manifest_bytes = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
            (dest / MANIFEST_FILE).write_bytes(manifest_bytes)
        if edit_model is not None:
            model = dest / MODEL_FILE
            model.write_bytes(edit_model(model.read_bytes()))
        if sign:
            (dest / SIGNATURE_FILE).write_bytes(signing.sign(release_key, manifest_bytes))
        return dest

    return build
