"""`edge-agent demo`: the product end to end on embedded defaults, in three parts.

1. ``live``: the simulated pump on a pty in real time, the agent on the shipped model
   with examples/agent.toml as shipped (paths, ports and URLs changed), faults (bearing
   wear, bearing overheating, device unplugged), the example's alarms they raised with
   lead times, and the twin the cloud keeps of the device.
2. ``loop``: the closed loop, fast-forwarded: a second pump whose bearing sensor drifts,
   synced to the cloud; `cloud-sync retrain` trains a model for it from the synced
   summaries and publishes a signed release; the agent downloads, verifies, self-tests
   and swaps it in under the live guard; the summary compares the forecast error of the
   default and the new model on the same readings and lists the alarms.
3. ``advisor``: a pump losing its lubrication, the agent's advisor derating it over the
   same pty before the bearing reaches its alarm, which never fires, and the twin's
   cross-channel alarm saying why (the bearing hot for its load); a chart sets the run
   beside the same pump left alone (edgetwin_demo/advisor.py).

The cloud is a real `cloud-sync serve` on 127.0.0.1 (SQLite) when the cloud extra is
installed; without it, only the live part runs, and the demo says so.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from edgetwin_common import logs
from edgetwin_demo.advisor import run_advisor_demo
from edgetwin_demo.cloud import DemoCloud
from edgetwin_demo.live import run_live
from edgetwin_demo.loop import run_loop

__all__ = ["main"]


def main(
    duration_s: float,
    rate_hz: float,
    workdir: Path,
    http_port: int,
    *,
    closed_loop: bool = True,
    echo: Callable[[str], None] = print,
) -> int:
    # Alarms are listed in each part's summary; the log shows only what went wrong.
    logs.configure("error", "text")
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cloud: DemoCloud | None = None
    if DemoCloud.is_available():
        cloud = DemoCloud(workdir)
        cloud.start()
        echo(f"cloud-sync serving at {cloud.url} (SQLite {cloud.database_url})")
    else:
        echo("cloud_sync is not installed here (pip install 'edgetwin[cloud]'): no cloud sync")
    try:
        echo("== part 1: a pump, live ==")
        code = run_live(duration_s, rate_hz, workdir, http_port, cloud, echo)
        if code != 0:
            return code
        if cloud is not None and closed_loop:
            echo("== part 2: the closed loop, fast-forwarded ==")
            run_loop(cloud, workdir / "loop", echo)
        if closed_loop:
            echo("== part 3: the advisor closes the loop, fast-forwarded ==")
            run_advisor_demo(workdir / "advisor", echo)
    finally:
        if cloud is not None:
            cloud.stop()
    return 0
