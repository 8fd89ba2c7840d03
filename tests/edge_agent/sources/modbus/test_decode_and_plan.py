"""Register decoding (every type and order) and request planning: pure functions."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.modbus.config import ByteOrder, DataType, ModbusRegister
from edge_agent.sources.modbus.decode import decode_words, encode_value
from edge_agent.sources.modbus.plan import plan_blocks

ORDERS = st.sampled_from(list(ByteOrder))
RANGES = {
    DataType.UINT16: (0, 0xFFFF),
    DataType.INT16: (-0x8000, 0x7FFF),
    DataType.UINT32: (0, 0xFFFF_FFFF),
    DataType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
}


@pytest.mark.parametrize(
    ("words", "data_type", "word_order", "byte_order", "expected"),
    [
        ([0x00D7], DataType.UINT16, "big", "big", 215),
        ([0xFF38], DataType.INT16, "big", "big", -200),
        ([0x38FF], DataType.INT16, "big", "little", -200),
        ([0x075B, 0xCD15], DataType.UINT32, "big", "big", 123_456_789),
        ([0xCD15, 0x075B], DataType.UINT32, "little", "big", 123_456_789),
        ([0xFFFF, 0xFFFE], DataType.INT32, "big", "big", -2),
        # 230.1 as float32 is 0x43661999 (ABCD); the usual orders of meters:
        ([0x4366, 0x1999], DataType.FLOAT32, "big", "big", 230.1),  # ABCD
        ([0x1999, 0x4366], DataType.FLOAT32, "little", "big", 230.1),  # CDAB
        ([0x6643, 0x9919], DataType.FLOAT32, "big", "little", 230.1),  # BADC
        ([0x9919, 0x6643], DataType.FLOAT32, "little", "little", 230.1),  # DCBA
    ],
)
def test_known_vectors(
    words: list[int], data_type: DataType, word_order: str, byte_order: str, expected: float
) -> None:
    value = decode_words(words, data_type, ByteOrder(word_order), ByteOrder(byte_order))
    assert value == pytest.approx(expected, rel=1e-7)


@given(data=st.data(), data_type=st.sampled_from(list(RANGES)), word=ORDERS, byte=ORDERS)
def test_integers_round_trip(
    data: Any, data_type: DataType, word: ByteOrder, byte: ByteOrder
) -> None:
    low, high = RANGES[data_type]
    value = data.draw(st.integers(low, high))
    words = encode_value(value, data_type, word, byte)
    assert len(words) == data_type.words
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_words(words, data_type, word, byte) == value


@given(value=st.floats(width=32, allow_nan=False), word=ORDERS, byte=ORDERS)
def test_float32_round_trips(value: float, word: ByteOrder, byte: ByteOrder) -> None:
    words = encode_value(value, DataType.FLOAT32, word, byte)
    assert decode_words(words, DataType.FLOAT32, word, byte) == value


def test_float32_nan_comes_back_nan() -> None:
    nan_words = list(struct.unpack(">HH", struct.pack(">f", math.nan)))
    assert math.isnan(decode_words(nan_words, DataType.FLOAT32))


@pytest.mark.parametrize(
    ("words", "data_type"),
    [([1], DataType.FLOAT32), ([1, 2], DataType.UINT16), ([0x10000], DataType.UINT16)],
)
def test_wrong_word_counts_are_caller_bugs(words: list[int], data_type: DataType) -> None:
    with pytest.raises(ValueError):
        decode_words(words, data_type)


def reg(channel: str, address: int, **extra: Any) -> ModbusRegister:
    return ModbusRegister.model_validate(
        {"channel": channel, "kind": "holding", "address": address} | extra
    )


def test_adjacent_registers_share_a_request_per_device_table_and_period() -> None:
    registers = [
        reg("a", 0, data_type="float32"),
        reg("b", 2, data_type="float32"),
        reg("c", 4),
        reg("gap", 6),  # address 5 is not read: a new request
        reg("slow", 7, period_s=10),
        reg("other_slave", 1, slave=2),
        reg("input", 0, kind="input"),
        reg("coil", 3, kind="coil", data_type="bool"),
        reg("coil2", 4, kind="coil", data_type="bool"),
    ]
    blocks = {
        (b.slave, b.kind.value, b.address, b.count, b.period_s) for b in plan_blocks(registers, 125)
    }
    assert blocks == {
        (1, "holding", 0, 5, 1.0),
        (1, "holding", 6, 1, 1.0),
        (1, "holding", 7, 1, 10.0),
        (2, "holding", 1, 1, 1.0),
        (1, "input", 0, 1, 1.0),
        (1, "coil", 3, 2, 1.0),
    }


@given(
    addresses=st.lists(st.integers(0, 300), min_size=1, max_size=40, unique=True),
    limit=st.integers(1, 125),
)
def test_every_register_is_in_exactly_one_block_within_the_limit(
    addresses: list[int], limit: int
) -> None:
    registers = [reg(f"r{a}", a, data_type="uint32" if a % 3 == 0 else "uint16") for a in addresses]
    blocks = plan_blocks(registers, limit)
    placed = [r.channel for b in blocks for r in b.registers]
    assert sorted(placed) == sorted(r.channel for r in registers)
    for block in blocks:
        assert block.count <= max(limit, 2)  # a 32-bit value is never split
        for r in block.registers:
            assert block.address <= r.address
            assert r.address + r.data_type.words <= block.address + block.count
