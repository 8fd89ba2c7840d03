"""`edge-agent doctor`'s actions check: a webhook whose host does not accept connections
fails before any alarm is lost, and a running agent's own record of each action (a real
agent whose webhook receiver is down) is reported."""

from __future__ import annotations

import socket
from pathlib import Path

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.doctor import actions
from edge_agent.doctor.base import DoctorContext, Status
from edgetwin_common.testing import free_port, wait_until
from tests.edge_agent.agent_harness import replay_temp_toml, running_agent


def _context(tmp_path: Path, body: str) -> DoctorContext:
    text = f'[agent]\nname = "doc"\ndata_dir = "{tmp_path}"\nlog_format = "text"\n{body}'
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return DoctorContext(path, "nobody", LoadedConfig(path, parse_config(text, str(path))))


def _webhook(port: int) -> str:
    return f"""
[[actions]]
type = "webhook"
name = "control-room"
url = "http://127.0.0.1:{port}/alarms"
retries = 0
"""


def test_a_webhook_that_accepts_connections_and_one_that_does_not(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        http = f"\n[http]\nport = {free_port()}\n"
        up = actions.check(_context(tmp_path, _webhook(port) + http))
        assert [(f.status, f.message) for f in up] == [
            (Status.OK, f"control-room: 127.0.0.1:{port} accepts connections"),
            (Status.SKIP, up[1].message),
        ]
        assert "no running agent answers" in up[1].message
    down = actions.check(_context(tmp_path, _webhook(free_port()) + http))[0]
    assert down.status is Status.FAIL
    assert "alarms will not reach" in down.message and "Connection refused" in down.message
    assert down.fix is not None and "getent hosts 127.0.0.1" in down.fix


def test_the_running_agents_record_of_each_action(tmp_path: Path) -> None:
    csv = tmp_path / "temp.csv"
    csv.write_text("timestamp,temp\n" + "".join(f"{1_700_000_000 + i},90\n" for i in range(50)))
    port = free_port()
    context = _context(
        tmp_path,
        replay_temp_toml(csv)
        + 'actions = ["log", "control-room"]\n'
        + _webhook(free_port())
        + f"\n[http]\nport = {port}\n",
    )
    assert context.loaded_config is not None
    with running_agent(context.loaded_config) as agent:
        wait_until(lambda: agent.actions["control-room"].counters["failed"] >= 1, "a give-up")
        findings = actions.check(context)
    by_status = {(f.status, f.message.split(":")[0]) for f in findings}
    assert (Status.FAIL, "control-room") in by_status  # the host refuses connections
    assert (Status.FAIL, "control-room (webhook)") in by_status  # the agent says so too
    assert (Status.OK, "log (log)") in by_status
    record = next(f for f in findings if f.message.startswith("control-room (webhook)"))
    assert "the last delivery failed" in record.message and "1 event(s) given up" in record.message
