"""renamed_key: a renamed config key's old spelling still works, with one deprecation
line naming the new one."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from edgetwin_common.config import renamed_key


def test_the_old_key_moves_to_the_new_one_in_place_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = {"name": "hot", "kind": "value_above", "set": 1}
    with caplog.at_level(logging.WARNING):
        moved = renamed_key(table, "kind", "type", "[[alarms]] 'hot'")
    assert list(moved.items()) == [("name", "hot"), ("type", "value_above"), ("set", 1)]
    assert table["kind"] == "value_above", "the caller's table is left alone"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "config: [[alarms]] 'hot': 'kind' is deprecated, write 'type' instead"
    )


@pytest.mark.parametrize(
    "data",
    [{"type": "value_above"}, {"kind": "a", "type": "b"}, ["kind"], "kind", None],
    ids=["no old key", "both keys", "a list", "a string", "none"],
)
def test_anything_else_is_returned_as_is_and_says_nothing(
    data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert renamed_key(data, "kind", "type", "here") is data
    assert caplog.records == []
