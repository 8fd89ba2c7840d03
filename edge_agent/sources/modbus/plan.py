"""The register map grouped into requests: adjacent registers of one device, table and
period share one read. Pure; the source polls the ``Block``s this returns."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.modbus.config import ModbusRegister, RegisterKind

__all__ = ["BIT_BLOCK_MAX", "Block", "plan_blocks"]

BIT_BLOCK_MAX = 2000
"""Coils or discrete inputs one request may read (Modbus spec)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``kind`` from ``address`` on
    device ``slave``, every ``period_s``; ``registers`` are the values inside it."""

    slave: int
    kind: RegisterKind
    address: int
    count: int
    period_s: float
    registers: tuple[ModbusRegister, ...]

    def describe(self) -> str:
        last = self.address + self.count - 1
        span = f"{self.address}" if last == self.address else f"{self.address}-{last}"
        return f"slave {self.slave} {self.kind.value} {span}"


def _width(reg: ModbusRegister) -> int:
    return max(reg.data_type.words, 1)


def plan_blocks(registers: list[ModbusRegister], max_block_registers: int) -> list[Block]:
    """Group ``registers`` into the fewest requests of adjacent (or overlapping)
    addresses, per (slave, kind, period), each within the protocol's size limit
    (``max_block_registers`` words, or 2000 bits). Every register is in exactly one block.
    """
    groups: dict[tuple[int, RegisterKind, float], list[ModbusRegister]] = {}
    for reg in registers:
        groups.setdefault((reg.slave, reg.kind, reg.period_s), []).append(reg)
    blocks: list[Block] = []
    for (slave, kind, period), regs in groups.items():
        limit = BIT_BLOCK_MAX if kind.is_bit else max_block_registers
        current: list[ModbusRegister] = []
        start = end = 0  # end: one past the last address of the current block
        for reg in sorted(regs, key=lambda r: r.address):
            reg_end = reg.address + _width(reg)
            if current and reg.address <= end and max(end, reg_end) - start <= limit:
                current.append(reg)
                end = max(end, reg_end)
                continue
            if current:
                blocks.append(Block(slave, kind, start, end - start, period, tuple(current)))
            current, start, end = [reg], reg.address, reg_end
        if current:
            blocks.append(Block(slave, kind, start, end - start, period, tuple(current)))
    return blocks
