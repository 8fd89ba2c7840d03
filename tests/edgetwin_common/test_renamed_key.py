"""renamed_key: a renamed config key's old spelling still works, with one deprecation
line naming the new one, logged when the file is loaded (not while validating)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationInfo, model_validator

from edgetwin_common.config import Strict, renamed_key, validate_data
from edgetwin_common.errors import ConfigInvalid


class _Rule(Strict):
    name: str
    type: str
    set: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any, info: ValidationInfo) -> Any:
        where = f"[[alarms]] {data.get('name')!r}" if isinstance(data, dict) else "[[alarms]]"
        return renamed_key(data, "kind", "type", where, info)


def test_the_old_key_moves_to_the_new_one_with_one_line_at_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = {"name": "hot", "kind": "value_above", "set": 1}
    with caplog.at_level(logging.WARNING):
        rule = validate_data(table, _Rule, "agent.toml")
    assert rule == _Rule(name="hot", type="value_above", set=1)
    assert table["kind"] == "value_above", "the caller's table is left alone"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == ("agent.toml: [[alarms]] 'hot': kind is deprecated, use type")


def test_validating_without_loading_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A model validated directly (tests, code) notes nothing: validation does no I/O."""
    with caplog.at_level(logging.WARNING):
        rule = _Rule.model_validate({"name": "hot", "kind": "value_above"})
    assert rule.type == "value_above"
    assert caplog.records == []


def test_no_old_key_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        validate_data({"name": "a", "type": "value_above"}, _Rule, "agent.toml")
    assert caplog.records == []


def test_both_spellings_are_refused_naming_the_old_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigInvalid) as info:
        validate_data({"name": "a", "kind": "a", "type": "b"}, _Rule, "agent.toml")
    assert [p.path for p in info.value.problems] == ["kind"]
    assert caplog.records == []
