"""Whoever reads ``service.twin`` uses a swapped-in twin on its next call: the what-if
and the advisor's twin predictor (whose batches and state were built for the old one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.twin.advisor.twin_predictor import TwinPredictor
from edge_agent.twin.model import load_twin
from edge_agent.twin.scenario import Scenario, Segment
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE

from .rig import WARM_S, build_rig


def _hotter(m: dict[str, Any]) -> None:
    m["model"]["version"] = "1.1.0"
    m["twin"]["channels"][0]["step_scale"] *= 3.0  # the bearing moves three times as far


def test_what_if_and_the_advisor_use_the_swapped_twin_at_once(
    tmp_path: Path, key_file: Path, make_bundle: Any, release_key: Ed25519PrivateKey
) -> None:
    rig = build_rig(tmp_path, key_file, "http://127.0.0.1:9")
    predictor = TwinPredictor(rig.service, "load", 0)
    for t in np.arange(0.0, WARM_S, 10.0):  # the predictor's data clock and control
        predictor.observe("load", float(t), 0.7)
    rig.pump.run_until(WARM_S)
    scenario = Scenario(controls={"load": [Segment(value=1.0, minutes=30)]})
    plans = np.full((2, 30), 1.0)
    before = rig.service.what_if(scenario)
    predicted_before = predictor.predict(plans, 60.0)["bearing_temp"]

    hotter = load_twin(
        make_bundle(edit_manifest=_hotter, source=DEFAULT_TWIN_BUNDLE), release_key.public_key()
    )
    previous = rig.service.swap(hotter)
    assert previous is not None and previous.manifest.model.version == "1.0.0"
    after = rig.service.what_if(scenario)
    predicted_after = predictor.predict(plans, 60.0)["bearing_temp"]
    fresh = TwinPredictor(rig.service, "load", 0)
    for t in np.arange(0.0, WARM_S, 10.0):
        fresh.observe("load", float(t), 0.7)
    expected = fresh.predict(plans, 60.0)["bearing_temp"]

    bearing = next(c.values for c in before.channels if c.channel == "bearing_temp")
    bearing_after = next(c.values for c in after.channels if c.channel == "bearing_temp")
    assert not np.allclose(bearing, bearing_after)
    assert not np.allclose(predicted_before, predicted_after)
    np.testing.assert_array_equal(predicted_after, expected)
    rig.close()
