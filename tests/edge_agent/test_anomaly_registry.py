"""The registry of score methods (edge_agent/anomaly/registry.py): every registered
method round-trips its config, is in the generated configuration reference, keeps its
settings to itself, and scores through the pipeline's contract (its scenario below)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.anomaly.registry import DEFAULT_METHOD, SCORE_METHODS, ScoreConfig, method_key
from edge_agent.anomaly.residual import ResidualScoreConfig
from edge_agent.config import parse_config
from edgetwin_common.errors import ConfigInvalid
from tests.conftest import REPO

SCORE: TypeAdapter[ScoreConfig] = TypeAdapter(ScoreConfig)
KEYS = [method_key(m) for m in SCORE_METHODS]

SCENARIOS: dict[str, dict[str, Any]] = {
    "residual": {"warmup": 8},
    "likelihood": {"warmup": 8, "likelihood_warmup": 50, "hold_samples": 5},
    "ensemble": {"warmup": 8, "likelihood_warmup": 50, "hold_samples": 5},
}
"""Per registered method: settings that warm up within the scenario's 300 samples. A
method without one fails ``test_every_method_has_a_scenario``."""


def test_every_method_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(KEYS)
    assert len(KEYS) == len(set(KEYS)), "two methods claim the same key"


@pytest.mark.parametrize("key", KEYS)
def test_a_method_is_silent_while_warming_then_scores_a_spike_above_the_noise(key: str) -> None:
    scorer = SCORE.validate_python({"method": key, **SCENARIOS[key]}).build()
    rng = np.random.default_rng(7)
    forecasts = 20.0 + np.sin(np.arange(300) / 10.0)
    readings = forecasts + rng.normal(0.0, 0.1, 300)
    assert not scorer.is_warm
    pairs = zip(readings, forecasts, strict=True)
    scores = [scorer.score(0.0, float(x), float(f)) for x, f in pairs]
    assert scorer.is_warm
    assert scores[0] is None and scores[-1] is not None
    first = next(i for i, s in enumerate(scores) if s is not None)
    assert all(s is not None for s in scores[first:]), "no None once warm"
    noise = float(np.median([s for s in scores[first:] if s is not None]))
    spike = scorer.score(0.0, float(forecasts[-1]) + 5.0, float(forecasts[-1]))
    assert spike is not None and spike > max(3.0, 5 * noise)
    with pytest.raises(ValueError, match="non-finite"):
        scorer.score(0.0, float("nan"), 20.0)


@pytest.mark.parametrize("key", KEYS)
def test_a_method_config_round_trips(key: str) -> None:
    config = SCORE.validate_python({"method": key, **SCENARIOS[key]})
    assert type(config) in SCORE_METHODS and config.method == key
    assert SCORE.validate_python(config.model_dump()) == config
    assert SCORE.validate_json(SCORE.dump_json(config)) == config


@pytest.mark.parametrize("key", KEYS)
def test_every_method_is_in_the_configuration_reference(key: str) -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert f'## `channel_defaults.score` with method = "{key}"\n' in doc
    assert f'## `channels.<name>.score` with method = "{key}"\n' in doc


def test_a_table_without_method_is_the_default_method() -> None:
    assert SCORE.validate_python({"alpha": 0.05}) == ResidualScoreConfig(alpha=0.05)
    assert DEFAULT_METHOD == "residual"


def test_an_unknown_method_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config('[channels.t.score]\nmethod = "median"\n')
    [problem] = info.value.problems
    assert (problem.path, problem.value) == ("channels.t.score.method", "median")
    assert all(repr(key) in problem.message for key in KEYS)


def test_a_setting_of_another_method_is_refused_naming_the_key() -> None:
    fields = {method_key(m): set(m.model_fields) for m in SCORE_METHODS}
    refused = [
        (key, name, owner)
        for key in KEYS
        for owner in KEYS
        for name in sorted(fields[owner] - fields[key])
    ]
    assert ("residual", "hold_level", "likelihood") in refused
    for key, name, owner in refused:
        with pytest.raises(ValidationError) as info:
            SCORE.validate_python({"method": key, name: 1})
        [error] = info.value.errors()
        assert error["loc"] == (name,)
        # Every method that has the key is named (likelihood and ensemble share some).
        owners = " or ".join(repr(m) for m in KEYS if name in fields[m])
        assert owner in owners
        assert error["msg"] == f"a setting of method {owners}, not of {key!r}"
