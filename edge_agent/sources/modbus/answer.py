"""Is this answer the answer to that request? RTU frames carry no transaction id, so a
late answer to one request, or a stray frame from another master, is only told apart by
what it says: the unit, the function code and the byte count must be the request's.
Pure; the source drops (and counts) every answer this finds wrong."""

from __future__ import annotations

from typing import Any

from edge_agent.sources.modbus.config import RegisterKind
from edge_agent.sources.modbus.plan import Block

__all__ = ["EXCEPTION_NAMES", "FUNCTION_CODES", "expected_byte_count", "mismatch"]

FUNCTION_CODES: dict[RegisterKind, int] = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE_INPUT: 2,
    RegisterKind.HOLDING: 3,
    RegisterKind.INPUT: 4,
}
"""The read function of each register table (Modbus application protocol, 6.1-6.4)."""

_EXCEPTION_BIT = 0x80

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
"""What each exception code means (Modbus application protocol, 7)."""


def expected_byte_count(block: Block) -> int:
    """The byte count a correct answer to ``block``'s request carries: 2 per register,
    or one byte per 8 bits (rounded up) for coils and discrete inputs."""
    if block.kind.is_bit:
        return (block.count + 7) // 8
    return 2 * block.count


def mismatch(response: Any, block: Block) -> str | None:
    """Why ``response`` (a decoded pymodbus PDU) cannot be the answer to ``block``'s
    read request, or None when its unit, function code (an exception response carries
    the request's code with bit 7 set) and, for a normal answer, byte count match."""
    unit = getattr(response, "dev_id", block.slave)
    if unit != block.slave:
        return f"answer from unit {unit}"
    wanted = FUNCTION_CODES[block.kind]
    code = int(response.function_code)
    is_exception = bool(code & _EXCEPTION_BIT)
    if code & ~_EXCEPTION_BIT != wanted:
        kind = "an exception" if is_exception else "an answer"
        return f"{kind} with function {code & ~_EXCEPTION_BIT} to a function {wanted} request"
    if is_exception:
        return None
    # pymodbus unpacks whole bytes of bits, and 2 bytes per register: the lengths give
    # back the frame's byte count.
    got = len(response.bits) // 8 if block.kind.is_bit else 2 * len(response.registers)
    expected = expected_byte_count(block)
    if got != expected:
        return f"answer of {got} bytes to a request for {expected}"
    return None
