"""The manifest's twin section: a cross-channel bundle's tensors, channels and band must
agree, and a per-channel forecaster's manifest keeps the bytes it had before twins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.model.shipped import DEFAULT_BUNDLE
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts.errors import ManifestInvalid
from edgetwin_contracts.manifest import parse_manifest


def _twin() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEFAULT_TWIN_BUNDLE / "manifest.json").read_text())
    return data


def test_the_shipped_twin_parses_as_kind_twin() -> None:
    raw = (DEFAULT_TWIN_BUNDLE / "manifest.json").read_bytes()
    manifest = parse_manifest(raw, "twin")
    assert manifest.kind == "twin" and manifest.twin is not None
    assert manifest.twin.outputs == ["bearing_temp", "vibration", "current", "ambient"]
    assert manifest.twin.controls == ["load"]
    assert manifest.to_json_bytes() == raw


def test_a_forecaster_manifest_has_no_twin_key() -> None:
    raw = (DEFAULT_BUNDLE / "manifest.json").read_bytes()
    manifest = parse_manifest(raw, "default")
    assert manifest.kind == "forecaster"
    assert b'"twin"' not in manifest.to_json_bytes()


def _mutated(path: list[str], value: Any) -> dict[str, Any]:
    data = _twin()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["twin", "controls"], ["vibration"], "must end with the controls"),
        (["twin", "horizon_steps"], 30, "residual_std.bearing_temp must hold horizon_steps"),
        (["input", "shape"], [1, 80], "is not [1, 81]"),
        (["output", "horizons"], [1, 2], "horizons [1]"),
        (["input", "sample_period_s"], None, "needs input.sample_period_s"),
    ],
)
def test_an_inconsistent_twin_is_refused(path: list[str], value: Any, message: str) -> None:
    raw = json.dumps(_mutated(path, value)).encode()
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(raw, "twin")
    assert message in str(caught.value)
