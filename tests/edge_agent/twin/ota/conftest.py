"""Fixtures: the release server, the fleet's release key as a PEM file, twin releases
(the shipped twin re-released, and a worse twin trained by model_export on other
physics, cached for the session)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts import signing
from edgetwin_contracts.batch import ModelRelease
from tests.conftest import require

from ...model.ota.releases import ReleaseServer, tar_bundle

WORSE_VERSION = "1.2.0"


@pytest.fixture
def server() -> Iterator[ReleaseServer]:
    srv = ReleaseServer()
    with srv.serve():
        yield srv


@pytest.fixture
def key_file(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(signing.public_key_pem(release_key.public_key()))
    return path


def versioned(version: str) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = version

    return edit


TwinPublisher = Callable[..., ModelRelease]


@pytest.fixture
def publish_twin(server: ReleaseServer, make_bundle: Any) -> TwinPublisher:
    """Publish the shipped twin (real TF-converted int8) re-signed with the fleet key as
    ``version``, after ``edit`` of its manifest; ``mode``: the server's misbehaviour."""

    def publish(
        version: str,
        edit: Callable[[dict[str, Any]], None] | None = None,
        *,
        sign: bool = True,
        mode: str = "ok",
        source: Path = DEFAULT_TWIN_BUNDLE,
    ) -> ModelRelease:
        def edit_all(m: dict[str, Any]) -> None:
            m["model"]["version"] = version
            if edit is not None:
                edit(m)

        folder = make_bundle(edit_manifest=edit_all, sign=sign, source=source)
        return server.add(f"twin-{version}", tar_bundle(folder), version, mode=mode)

    return publish


@pytest.fixture(scope="session")
def worse_twin(tmp_path_factory: pytest.TempPathFactory, release_key: Ed25519PrivateKey) -> Path:
    """The worse twin (``build_worse_twin``), built once a session."""
    return build_worse_twin(tmp_path_factory.mktemp("worse") / "twin", release_key)


def build_worse_twin(dest: Path, release_key: Ed25519PrivateKey) -> Path:
    """A twin trained by model_export (Keras -> int8 TFLite -> signed with
    ``release_key``) on a pump with other physics (a bearing rising three times less
    with the load, a current twice as steep), briefly: valid, plausible, and worse on
    this pump. Written to ``dest``; also used by tests/e2e/test_twin_release.py."""
    require(importlib.util.find_spec("tensorflow") is not None, "TensorFlow is not installed")
    from edge_agent.simulator.pump import PumpParams
    from model_export.bundle import Release
    from model_export.train import TrainSettings
    from model_export.twin_corpus import CHANNELS, CONTROLS, CorpusSettings, pump_corpus
    from model_export.twin_export import TwinRecipe, build_twin

    params = PumpParams(bearing_rise_per_load_c=10.0, current_per_load_a=27.0)
    series = pump_corpus(CorpusSettings(series=12, periods=120, seed=3), params)
    recipe = TwinRecipe(
        channels=CHANNELS,
        controls=CONTROLS,
        period_s=60.0,
        window_steps=8,
        horizon_steps=20,
        holdout_fraction=0.25,
        train=TrainSettings(hidden=(16,), epochs=3, batch_size=64, loss="mse", verbose=0),
    )
    build_twin(
        series,
        recipe,
        Release(name="other-physics-twin", version=WORSE_VERSION, sample_period_s=60.0),
        release_key,
        dest,
        dataset="a pump with other physics",
    )
    return dest
