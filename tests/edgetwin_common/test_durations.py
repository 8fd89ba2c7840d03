"""Durations as an operator reads them."""

from __future__ import annotations

import pytest

from edgetwin_common.durations import duration_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.1, "0.1 s"),
        (1.6, "1.6 s"),
        (30.0, "30 s"),
        (60.0, "60 s"),
        (160.0, "2.67 min"),
        (960.0, "16 min"),
        (5400.0, "1.5 h"),
        (86400.0, "24 h"),
        (3 * 86400.0, "3 d"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
