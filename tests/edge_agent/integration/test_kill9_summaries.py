"""`edge-agent run` killed with SIGKILL 20 times mid-interval, on live readings from a
TCP gateway: after a last clean start and stop, every committed reading is counted by a
stored summary (the summaries are what reaches the cloud), and none twice.

The kill points are defined by what the agent has done (readings processed, as /status
reports them), not by clocks. Prints the figure it asserts.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import pytest

from edgetwin_common.testing import free_port, wait_until
from tests.edge_agent.integration.helpers import (
    GUARD_S,
    AgentProcess,
    agent_process,
    agent_toml,
    inspect_store,
)
from tests.edge_agent.store.coverage import summary_coverage

KILLS = 20
PERIOD_S = 0.005
"""The gateway's line period: 200 lines a second, two channels each."""


class Gateway:
    """A serial-to-Ethernet gateway: every client gets ``t=... p=...`` lines."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._write, args=(client,), daemon=True).start()

    def _write(self, client: socket.socket) -> None:
        n = 0
        with client:
            while not self._stop.wait(PERIOD_S):
                n += 1
                try:
                    client.sendall(f"t={20 + n % 7}.5 p={3 + n % 3}.25\n".encode())
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


def processed(agent: AgentProcess) -> int:
    return sum(int(c["processed"]) for c in agent.status()["channels"])


@pytest.mark.slow
def test_20_kills_leave_no_committed_reading_without_a_summary(tmp_path: Path) -> None:
    gateway = Gateway()
    data_dir = tmp_path / "data"
    store_path = data_dir / "edge-agent.db"
    port = free_port()
    body = f"""
[[sources]]
type = "tcp"
name = "gw"
host = "127.0.0.1"
port = {gateway.port}
format = "kv"
read_timeout_s = 0.1
backoff = {{ initial_s = 0.02, max_s = 0.1 }}

[sources.fields.t]
channel = "temp"

[sources.fields.p]
channel = "pressure"

[store]
summary_interval_s = 2.0
flush_interval_s = 0.2
"""
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(data_dir, body, port=port))
    cut = []
    try:
        for run in range(KILLS):
            with agent_process(config, port, tmp_path / f"run{run}.log") as agent:
                agent.wait_ready()
                # Rows processed in this life before the kill: 50..525, a kill lands at
                # a different place in the 2 s interval each time.
                rows = 50 + 25 * run
                wait_until(
                    lambda: processed(agent) >= rows,  # noqa: B023
                    f"{rows} rows processed",
                    timeout_s=GUARD_S,
                )
                assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
            after = inspect_store(store_path, scratch=tmp_path / f"copy{run}")
            assert after.integrity == "ok", f"run {run}"
            cut.append(summary_coverage(tmp_path / f"copy{run}" / store_path.name).uncovered)
        with agent_process(config, port, tmp_path / "final.log") as agent:
            agent.wait_ready()
            wait_until(lambda: processed(agent) >= 50, "50 rows", timeout_s=GUARD_S)
            assert agent.signal(signal.SIGTERM) == 0, agent.output()
    finally:
        gateway.close()
    coverage = summary_coverage(store_path)
    print(
        f"\n{KILLS} kills: {coverage.readings} committed readings,"
        f" {coverage.uncovered} without a summary, {coverage.overcounted} counted twice;"
        f" uncovered at each kill (before the restart rebuilt them): {cut}"
    )
    assert sum(cut) > 0  # the kills did land inside open intervals
    assert coverage.readings > 0
    assert (coverage.uncovered, coverage.overcounted) == (0, 0)
