"""The sample window: contiguous, oldest first, no copies."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.pipeline.window import SampleWindow


@given(length=st.integers(1, 40), values=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=200))
def test_view_is_the_last_samples_oldest_first(length: int, values: list[float]) -> None:
    window = SampleWindow(length)
    for i, v in enumerate(values):
        window.push(v)
        assert window.is_full == (i + 1 >= length)
        if window.is_full:
            np.testing.assert_array_equal(window.view(), values[i + 1 - length : i + 1])


def test_view_shares_memory_and_is_contiguous() -> None:
    window = SampleWindow(8)
    for i in range(20):
        window.push(float(i))
    view = window.view()
    assert view.flags["C_CONTIGUOUS"]
    assert view.base is not None


def test_reset_forgets_the_samples() -> None:
    window = SampleWindow(3)
    for v in (1.0, 2.0, 3.0):
        window.push(v)
    window.reset()
    assert not window.is_full
    for v in (7.0, 8.0, 9.0):
        window.push(v)
    np.testing.assert_array_equal(window.view(), [7.0, 8.0, 9.0])
