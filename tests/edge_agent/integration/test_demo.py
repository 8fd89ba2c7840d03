"""`edge-agent demo` end to end as a subprocess: the simulated pump on a pty, the agent on
it, and the summary of what happened; then the closed loop fast-forwarded (sync, retrain,
release, over-the-air update) and its before/after comparison."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import require
from tests.edge_agent.integration.helpers import inspect_store, run_cli

if not hasattr(os, "openpty"):
    require(False, "no pseudo-terminals on this OS", module=True)

# The default run: the example config's bearing model sees one sample a second and needs a
# full 32-step window before it forecasts.
DURATION_S = 60


@pytest.mark.slow
def test_demo_runs_and_tells_what_happened(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    args = ["demo", "--duration", str(DURATION_S), "--rate", "20", "--port", "0"]

    done = run_cli([*args, "--workdir", str(workdir)], tmp_path, timeout_s=DURATION_S + 600)

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "agent running: status at http://127.0.0.1:" in out
    lines = out.splitlines()
    live = lines[: lines.index("== part 2: the closed loop, fast-forwarded ==")]
    summary = live[live.index("what happened (seconds from the start):") :]
    text = "\n".join(summary)
    # The three injected faults, each on its own timeline line.
    faults = [line for line in summary if "FAULT" in line]
    assert len(faults) == 3, text
    assert "bearing wear: vibration up" in faults[0]
    assert "bearing overheating begins" in faults[1]
    assert "device unplugged for 3 s" in faults[2]

    def first(marker: str) -> int:
        found = [i for i, line in enumerate(summary) if marker in line]
        assert found, text
        return found[0]

    # The example config's own rules, each after the fault that causes it (the timeline
    # is in time order): the wear's fast rise, then its high level.
    wear_at = summary.index(faults[0])
    assert wear_at < first("ALARM  vibration-rising-fast on vibration")
    assert wear_at < first("ALARM  vibration-high on vibration [warning]")
    assert "the bearing wear raised vibration-high" in text
    # The overheating: predicted before the bearing crossed 85 °C, with a lead time.
    overheat_at = summary.index(faults[1])
    predicted = first("ALARM  bearing-hot-predicted on bearing_temp [warning]")
    crossed = first("ALARM  bearing-hot on bearing_temp [critical]")
    assert overheat_at < predicted < crossed, text
    lead = re.search(
        r"the overheating was predicted ([\d.]+) s before the bearing crossed 85", text
    )
    assert lead and float(lead.group(1)) > 0, text
    # The unplugged device raised the example's link alarm (one for the device).
    assert summary.index(faults[2]) < first("ALARM  pump-mcu-link on current [critical]")
    # The anomaly rule is still learning (warmup_s), and the summary says why it is quiet.
    assert "ALARM  anomaly" not in text
    assert "the anomaly rule stayed quiet" in text
    # The device came back before the end, and the source reconnected by itself.
    reconnected = re.search(r"the serial source reconnected (\d+) time", text)
    assert reconnected and int(reconnected.group(1)) >= 1, text

    # The demo's cloud-sync received the device's batches: its twin is printed.
    assert "device demo-pump registered" in out
    assert "the cloud's twin of demo-pump:" in text
    batches = re.search(r"last batch #(\d+)", text)
    assert batches and int(batches.group(1)) >= 1, text
    assert "model edgetwin-generic-forecaster" in text

    store_path = workdir.resolve() / "edge-agent.db"  # the demo prints resolved paths
    assert f"alarm history kept in {store_path}" in text
    store = inspect_store(store_path)
    assert store.integrity == "ok"
    assert store.readings > 0
    assert len(store.alarm_ids) >= 5  # vibration, bearing and health alarms

    # Part 2: the closed loop. The retrain skipped the live pump (a minute of summaries)
    # with its reason, promoted a model for the fast-forwarded one, and the agent
    # installed it through the live guard.
    loop = lines[lines.index("== part 2: the closed loop, fast-forwarded ==") :]
    loop_text = "\n".join(loop)
    assert "demo-pump: skipped: too little data" in loop_text
    promoted = re.search(
        r"demo-pump-2: promoted: held-out MAE ([\d.]+) vs deployed ([\d.]+)", loop_text
    )
    assert promoted, loop_text
    assert float(promoted.group(1)) < float(promoted.group(2))
    # The sensor reads faster than the summary interval (the retrained model's period).
    assert "one reading per 2 s of pump time, summaries every 10 s" in loop_text
    assert "model update: installed 1.0.1" in loop_text, loop_text
    guard = re.search(r"same (\d+) samples: new model MAE ([\d.]+), previous model", loop_text)
    assert guard and int(guard.group(1)) == 400, loop_text
    # Both models replayed over the same readings after the update, channel by channel.
    table = loop[loop.index(next(x for x in loop if "forecast MAE on the same" in x)) + 2 :][:4]
    assert sorted(row.split()[0] for row in table) == sorted(
        ["bearing_temp", "vibration", "current", "ambient"]
    ), loop_text
    # Compared at the horizons the operator sees, in time, on the 10 s means.
    assert "forecast MAE on the same" in loop_text and "10 s means per channel" in loop_text
    mean = re.search(
        r"mean change over channels: ([-+\d.]+) % 10 s ahead, ([-+\d.]+) % 2\.67 min ahead",
        loop_text,
    )
    assert mean, loop_text
    # The drifting sensor: its crossing was predicted before it happened.
    assert "FAULT  bearing sensor drift begins" in loop_text
    assert "ALARM  bearing-hot-predicted on bearing_temp" in loop_text
    assert "the cloud's twin of demo-pump-2: model 1.0.1" in loop_text
    # Part 3: the advisor derates the third pump over its pty; its alarm never fires.
    advised = "\n".join(
        lines[lines.index("== part 3: the advisor closes the loop, fast-forwarded ==") :]
    )
    assert "left alone: bearing peak" in advised and "overheating alarm at" in advised
    assert "with the advisor:" in advised and "overheating alarm raised 0 time(s)" in advised
