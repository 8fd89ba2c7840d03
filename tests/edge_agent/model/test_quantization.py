"""int8 affine quantization arithmetic (TFLite's definition), as properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.model.inference.quantization import QuantParams, dequantize, quantize

params = st.builds(
    QuantParams,
    scale=st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_infinity=False),
    zero_point=st.integers(min_value=-128, max_value=127),
)


@given(qp=params, data=st.data())
def test_round_trip_error_is_at_most_half_a_step_inside_the_range(
    qp: QuantParams, data: st.DataObject
) -> None:
    x = data.draw(st.floats(min_value=qp.real_min, max_value=qp.real_max))
    back = dequantize(quantize([x], qp), qp)[0]
    assert abs(back - x) <= qp.scale / 2 * (1 + 1e-9)


@given(qp=params, excess=st.floats(min_value=0.0, max_value=1e9))
def test_values_outside_the_range_saturate(qp: QuantParams, excess: float) -> None:
    q = quantize([qp.real_max + excess * qp.scale, qp.real_min - excess * qp.scale], qp)
    assert q.tolist() == [127, -128]


@given(qp=params, xs=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=2, max_size=32))
def test_quantization_is_monotonic(qp: QuantParams, xs: list[float]) -> None:
    xs.sort()
    q = quantize(xs, qp).astype(int)
    assert all(a <= b for a, b in itertools.pairwise(q))


@given(qp=params, q=st.lists(st.integers(-128, 127), min_size=1, max_size=16))
def test_dequantize_inverts_quantize_on_the_grid(qp: QuantParams, q: list[int]) -> None:
    arr = np.asarray(q, dtype=np.int8)
    np.testing.assert_array_equal(quantize(dequantize(arr, qp), qp), arr)


def test_zero_point_maps_to_real_zero() -> None:
    qp = QuantParams(scale=0.05, zero_point=-12)
    assert dequantize(np.asarray([-12], dtype=np.int8), qp)[0] == 0.0
    assert quantize([0.0], qp)[0] == -12


def test_reuses_the_output_buffer() -> None:
    qp = QuantParams(scale=0.5, zero_point=0)
    out = np.zeros(3, dtype=np.int8)
    assert quantize([0.5, 1.0, -300.0], qp, out=out) is out
    assert out.tolist() == [1, 2, -128]


@pytest.mark.parametrize(
    ("scale", "zero_point"), [(0.0, 0), (-1.0, 0), (float("nan"), 0), (1.0, 128)]
)
def test_invalid_parameters_are_refused(scale: float, zero_point: int) -> None:
    with pytest.raises(ValueError):
        QuantParams(scale=scale, zero_point=zero_point)


def test_reads_a_tensors_own_parameters() -> None:
    details = {
        "quantization": (0.0, 0),
        "quantization_parameters": {"scales": np.array([0.25]), "zero_points": np.array([-3])},
    }
    assert QuantParams.from_tensor_details(details) == QuantParams(0.25, -3)
