"""Reading blocks: values come back bit for bit, and data that is not a block is refused
with the block named."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.store.blocks import FORMAT, decode, encode
from edge_agent.store.errors import StoreUnreadable

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(
    st.lists(
        st.tuples(finite, st.integers(0, 65_535), finite, finite | st.just(math.nan), finite),
        min_size=1,
        max_size=300,
    )
)
def test_a_block_round_trips_bit_for_bit(
    rows: list[tuple[float, int, float, float, float]],
) -> None:
    columns = list(zip(*rows, strict=True))
    block = decode(encode(*columns), 1)  # type: ignore[arg-type]
    for got, want in zip(
        (block.ts, block.channel_id, block.value, block.forecast, block.score), columns, strict=True
    ):
        # Bit for bit, NaN included: compare the bytes, not the floats.
        assert np.asarray(got).tobytes() == np.asarray(want, got.dtype).tobytes()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "unknown format"),
        (bytes([FORMAT + 1]) + b"\0" * 10, "unknown format"),
        (bytes([FORMAT]) + struct.pack("<I", 3) + b"not deflate", "Error -3"),
        (bytes([FORMAT]) + struct.pack("<I", 3) + zlib.compress(b"\0" * 10), "10 bytes for 3"),
    ],
)
def test_data_that_is_not_a_block_is_refused_naming_it(data: bytes, problem: str) -> None:
    with pytest.raises(StoreUnreadable, match=f"reading block 42: .*{problem}"):
        decode(data, 42)
