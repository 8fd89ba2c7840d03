"""The manifest schema: parsing, errors with key paths, consistency, versions."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_contracts.errors import ManifestInvalid, SchemaVersionUnsupported
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    Manifest,
    Normalization,
    parse_manifest,
    version_key,
)
from edgetwin_contracts.normalization import normalize_windows, window_stats


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEFAULT_BUNDLE / MANIFEST_FILE).read_bytes())
    return data


def parse(data: dict[str, Any]) -> Manifest:
    return parse_manifest(json.dumps(data).encode(), "b")


def test_shipped_manifest_round_trips_to_identical_bytes() -> None:
    raw = (DEFAULT_BUNDLE / MANIFEST_FILE).read_bytes()
    assert parse_manifest(raw, "b").to_json_bytes() == raw


def test_unknown_field_is_refused_with_its_path() -> None:
    data = shipped()
    data["input"]["windowlength"] = 3
    with pytest.raises(ManifestInvalid, match=r"input\.windowlength: Extra inputs"):
        parse(data)


def test_wrong_types_are_listed_together() -> None:
    data = shipped()
    data["file"]["sha256"] = "xyz"
    data["output"]["horizons"] = [4, 2]
    with pytest.raises(ManifestInvalid) as info:
        parse(data)
    assert "file.sha256" in str(info.value)
    assert "output.horizons: Value error, horizons must be strictly ascending" in str(info.value)


def test_missing_schema_version_is_unsupported() -> None:
    data = shipped()
    del data["schema_version"]
    with pytest.raises(SchemaVersionUnsupported, match="schema_version is None"):
        parse(data)


def test_json_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ManifestInvalid, match="must hold a JSON object"):
        parse_manifest(b"[1, 2]", "b")


def test_golden_vector_of_the_wrong_length_is_refused() -> None:
    data = shipped()
    data["golden"]["vectors"][0]["input"].pop()
    with pytest.raises(ManifestInvalid, match=r"golden\.vectors\.0\.input has"):
        parse(data)


def test_output_shape_must_match_horizons() -> None:
    data = shipped()
    data["output"]["shape"] = [1, 99]
    with pytest.raises(ManifestInvalid, match="does not match"):
        parse(data)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.9.2", "1.10.0"), ("1.0", "1.0.1"), ("0.9", "1"), ("2.0.0-rc1", "2.0.1")],
)
def test_versions_order_numerically(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


@given(
    st.lists(st.floats(min_value=-1e5, max_value=1e5), min_size=4, max_size=64),
    st.floats(min_value=1e-3, max_value=1e3),
    st.floats(min_value=-1e3, max_value=1e3),
)
def test_normalization_is_scale_and_offset_invariant(
    values: list[float], a: float, b: float
) -> None:
    norm = Normalization(min_std_abs=1e-9, min_std_rel=0.0)
    x = np.asarray(values)
    _, std = window_stats(x[None, :], norm)
    # Near-flat windows are governed by the floors, not by invariance.
    assume(std[0] > 1e-3 * (np.abs(x).max() + 1.0))
    z1, _, _ = normalize_windows(x[None, :], norm)
    z2, _, _ = normalize_windows((a * x + b)[None, :], norm)
    np.testing.assert_allclose(z1, z2, atol=1e-6)
