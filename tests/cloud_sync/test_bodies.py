"""Body decoding and validation without a server: caps, gzip bombs, strict JSON."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.errors import BatchInvalid, BodyMalformed, BodyTooLarge, EncodingUnsupported
from cloud_sync.ingest import check_content_length, decode_body, parse_batch, storable_problems
from edgetwin_contracts.batch import MAX_BATCH_BYTES, MAX_BATCH_DECOMPRESSED_BYTES
from tests.cloud_sync.conftest import batch


def _bomb(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


def test_gzip_bomb_stops_at_the_cap_in_bounded_memory() -> None:
    bomb = _bomb(200)  # 200 MB of zeros in ~200 KB
    assert len(bomb) < MAX_BATCH_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            decode_body(bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The cap (4 MiB) plus working buffers; inflating the bomb would need 200 MB.
    assert peak < 3 * MAX_BATCH_DECOMPRESSED_BYTES, f"peak {peak / 2**20:.1f} MiB"


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=20_000))
def test_gzip_round_trip_within_the_cap(data: bytes) -> None:
    assert decode_body(gzip.compress(data), "gzip") == data
    assert decode_body(data, None) == data


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=2_000), st.integers(min_value=1, max_value=17))
def test_a_cut_gzip_stream_is_malformed(data: bytes, cut: int) -> None:
    with pytest.raises(BodyMalformed):
        decode_body(gzip.compress(data)[:-cut], "gzip")


def test_exactly_at_the_decompressed_cap_is_accepted() -> None:
    data = b" " * MAX_BATCH_DECOMPRESSED_BYTES
    assert len(decode_body(gzip.compress(data), "gzip")) == MAX_BATCH_DECOMPRESSED_BYTES
    with pytest.raises(BodyTooLarge):
        decode_body(gzip.compress(data + b" "), "gzip")


def test_trailing_data_and_other_encodings() -> None:
    with pytest.raises(BodyMalformed, match="after the end"):
        decode_body(gzip.compress(b"{}") + b"junk", "gzip")
    with pytest.raises(EncodingUnsupported):
        decode_body(b"{}", "deflate")
    assert decode_body(b"{}", "Identity") == b"{}"


def test_content_length_checked_before_reading() -> None:
    check_content_length(str(MAX_BATCH_BYTES))
    check_content_length(None)
    with pytest.raises(BodyTooLarge):
        check_content_length(str(MAX_BATCH_BYTES + 1))
    with pytest.raises(BodyMalformed):
        check_content_length("lots")


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    with pytest.raises(BodyMalformed):
        parse_batch(b"[" * 200_000 + b"]" * 200_000, time.time(), 86_400)


def test_storable_problems_have_locations() -> None:
    value = {"a": [1, {"b\x00": 2**64}], "c": float("inf"), "d": True, "e": "ok"}
    found = sorted((tuple(p["loc"]), p["type"]) for p in storable_problems(value))
    assert found == [
        (("body", "a", 1), "nul"),
        (("body", "a", 1, "b\x00"), "int_range"),
        (("body", "c"), "finite_number"),
    ]


def test_clock_skew_limit_is_configurable() -> None:
    now = time.time()
    body = json.dumps(batch(1, created_at=now + 120)).encode()
    assert parse_batch(body, now, 300).sequence == 1
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(body, now, 60)
    assert caught.value.detail[0]["loc"] == ["body", "created_at"]
    assert caught.value.detail[0]["type"] == "clock_skew"
