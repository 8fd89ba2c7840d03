"""`edge-agent simulate --modbus`: the pump as a Modbus slave, read and commanded through
pymodbus' own client over TCP (a real server in a child process), and its setpoint
register's range check; bad arguments named."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pymodbus.client import ModbusTcpClient

from edge_agent.simulator.modbus_pump import INPUT_REGISTERS, SETPOINT_REGISTER, modbus_argument
from edgetwin_common.testing import free_port

SAFETY_S = 20.0


def test_simulate_modbus_tcp_serves_the_pump_and_takes_its_setpoint() -> None:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "simulate", "--modbus", f"tcp:{port}",
         "--rate", "10", "--seed", "3", "--duration", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith(f"modbus tcp device (unit 1) at 127.0.0.1:{port}")
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        assert client.connect()
        try:
            inputs = client.read_input_registers(0, count=len(INPUT_REGISTERS), device_id=1)
            bearing, vibration, current, ambient, load = inputs.registers
            assert 4000 < bearing < 8000 and 500 < vibration < 5000  # °C x100, mm/s x1000
            assert 1000 < current < 2500 and 1500 < ambient < 3000 and 150 <= load <= 1000
            assert not client.write_register(SETPOINT_REGISTER, 550, device_id=1).isError()
            refused = client.write_registers(SETPOINT_REGISTER, [1500], device_id=1)
            assert refused.isError() and refused.exception_code == 3
            wrong = client.write_register(SETPOINT_REGISTER + 2, 10, device_id=1)
            assert wrong.isError() and wrong.exception_code == 2
            back = client.read_holding_registers(SETPOINT_REGISTER, count=1, device_id=1)
            assert back.registers == [550]
        finally:
            client.close()
        out, err = child.communicate(timeout=SAFETY_S)
    finally:
        child.kill()
        child.wait()
    assert "stopped: 1 setpoint write(s) taken, 1 refused" in out
    assert ", 0.55)]" in out  # the setpoint took effect at a sample
    assert "load setpoint 1500 refused (exception 3)" in err


@pytest.mark.parametrize("text", ["tcp", "tcp:0", "tcp:99999", "serial", "rtu:1"])
def test_bad_modbus_arguments_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="expected rtu or tcp:PORT"):
        modbus_argument(text)
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "simulate", "--modbus", text],
        capture_output=True, text=True, timeout=SAFETY_S,
    )  # fmt: skip
    assert done.returncode == 2 and "--modbus" in done.stderr
