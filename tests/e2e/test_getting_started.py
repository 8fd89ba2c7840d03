"""docs/getting-started.md, run as written: its ```sh blocks in order, in one bash (-e: a
failing command stops it), on a fresh clone of this repository, on the simulator; only
the port numbers are changed
(to free ones) and the setup block is left out (this test runs in the venv `make`
made). A command that fails, or a wait that never ends, fails the test with the
transcript and the logs of the background processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from edgetwin_common.testing import free_port
from tests.conftest import REPO, require

DOC = REPO / "docs" / "getting-started.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
GUARD_S = 1200.0
"""Upper bound on the whole path (retraining included): a hang fails, never stalls."""


def doc_script(agent_port: int, cloud_port: int) -> str:
    blocks = [b for b in FENCE.findall(DOC.read_text()) if not b.startswith("# setup")]
    script = "\n".join(blocks)
    return script.replace("127.0.0.1:8080", f"127.0.0.1:{agent_port}").replace(
        "127.0.0.1:8300", f"127.0.0.1:{cloud_port}"
    )


def test_the_doc_has_its_steps() -> None:
    script = doc_script(8080, 8300)
    for command in (
        "edge-agent simulate",
        "edge-agent check-config",
        "cloud-sync init-config",
        "cloud-sync devices add",
        "edge-agent run",
        "cloud-sync retrain",
        "kill $(jobs -p)",
    ):
        assert command in script


def test_getting_started_on_a_fresh_clone(tmp_path: Path) -> None:
    require(shutil.which("git") is not None, "git (Debian: git)")
    require(shutil.which("curl") is not None, "curl (Debian: curl)")
    clone = tmp_path / "edgetwin"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    agent_port, cloud_port = free_port(), free_port()
    # The [http] and [server] ports in the configs follow the URLs the doc uses.
    script = doc_script(agent_port, cloud_port)
    script = script.replace(
        "examples/agent.toml > run/agent.toml",
        f"examples/agent.toml | sed 's|^port = 8080|port = {agent_port}|' > run/agent.toml",
    ).replace(
        "    run/cloud.toml\n",
        f"    -e 's|^port = 8300|port = {cloud_port}|' run/cloud.toml\n",
        1,
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # The clone's code, not this checkout's (the venv's editable install points here).
        "PYTHONPATH": str(clone),
    }
    proc = subprocess.Popen(
        ["bash", "-eu", "-c", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    finally:
        # The doc's background processes share bash's process group: none outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    logs = "".join(
        f"\n--- {log.name} (last 40 lines)\n" + "\n".join(log.read_text().splitlines()[-40:])
        for log in sorted((clone / "run").glob("*.log"))
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}{logs}"
    assert "run/agent.toml: OK" in out
    assert "pump-7\tpromoted" in out, out
    assert "Traceback" not in out + logs
