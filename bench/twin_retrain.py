"""The twin's retrain on a simulated fleet (issue 17, item 1): does the fleet twin
pretrained on the fleet's synced data, and each device's fine-tune, predict each
device's held-out future better than the shipped default twin?

The fleet: N pump simulators at 1 Hz for D days, each with an operator stepping its
load limit every 20-90 minutes (the pump's demand cycle alone never steps the load);
the first K devices have a fouled bearing now and then (lost lubrication at 0.6-1.5
°C/min for 15-30 minutes, then recovered: overheats of 10-40 °C), every ~10 hours. Their
1-minute summaries go into a real SQLite cloud database through the cloud's ingest
(``edgetwin_demo.fleet_data``), and ``cloud-sync retrain``'s own ``retrain`` runs on a
LocalCluster of 2 single-threaded workers, the forecasters and the twins, with
[training.twin] at its defaults.

Reported:
  * what-if MAE on each device's held-out future (its most recent 20 % of periods,
    rolled from up to 240 start points under the load it actually had) at 1 step, 10,
    30 and 60 minutes, per channel, averaged over the devices: the shipped default,
    the fleet twin, the device's fine-tune, and what each device runs after the retrain
    (the fine-tune where promoted, else the default); healthy and faulty devices apart;
  * the wall time of the retrain (whole, and its twin part);
  * with ``--advisor RUNS``: bench/advisor.py's closed loop with the twin alone
    (``twin_residual_periods = 0``) as the predictor, the shipped default against the
    fleet twin: how many of the fouled bearings' overheats each prevents.

    python bench/twin_retrain.py [--devices 8] [--faulty 3] [--days 3] [--advisor 30]
        [--advisor-seeds 0 1000] [--varied] [--twin-only] [--pretrain-epochs N]
        [--finetune-epochs N] [--keep FOLDER]

``--varied``: pumps unlike the shipped twin's (bearing rise, time constant, current off
by up to 25 %): where per-device fine-tunes should win. ``--twin-only``: the twin's part
of the retrain alone. Figures: docs/training.md, "The twin", "Measured".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cloud_sync.config import (
    CloudConfig,
    DatabaseSection,
    ReleasesSection,
    TrainingSection,
    TwinRetrainSection,
)
from cloud_sync.db.session import make_engine, upgrade
from cloud_sync.training.dataset import device_names
from cloud_sync.training.retrain import retrain
from edge_agent.simulator.faults import Fault, FaultKind
from edge_agent.simulator.pump import PumpParams, SimulatorSettings
from edgetwin_contracts.signing import generate_private_key, save_keypair
from edgetwin_demo.fleet_data import SimulatedDevice, operator_plan, sync_simulated

MARKS = ("1 step", "10 min", "30 min", "60 min")


def fouled_bearing(seed: int, duration_s: float) -> tuple[Fault, ...]:
    """Lost lubrication episodes, every 6 to 14 hours, each recovering."""
    rng = random.Random(f"fouled:{seed}")
    faults = []
    t = rng.uniform(2 * 3600.0, 8 * 3600.0)
    while t < duration_s - 3600.0:
        rate = rng.uniform(0.6, 1.5)
        faults.append(Fault(FaultKind.OVERHEAT, t, rng.uniform(15.0, 30.0) * 60.0, rate=rate))
        t += rng.uniform(6 * 3600.0, 14 * 3600.0)
    return tuple(faults)


def varied_pump(seed: int) -> PumpParams:
    """A pump unlike the shipped twin's: its bearing's rise, time constant and motor
    current off the simulator's defaults by up to 25 %."""
    rng = random.Random(f"varied:{seed}")
    p = PumpParams()
    return replace(
        p,
        bearing_rise_c=p.bearing_rise_c * rng.uniform(0.8, 1.2),
        bearing_rise_per_load_c=p.bearing_rise_per_load_c * rng.uniform(0.75, 1.25),
        bearing_tau_s=p.bearing_tau_s * rng.uniform(0.75, 1.25),
        current_per_load_a=p.current_per_load_a * rng.uniform(0.85, 1.15),
    )


def build_fleet(
    engine: Any, devices: int, faulty: int, days: float, varied: bool = False
) -> list[SimulatedDevice]:
    duration = days * 86400.0
    fleet = []
    for i in range(devices):
        faults = fouled_bearing(i, duration) if i < faulty else ()
        params = varied_pump(i) if varied else PumpParams()
        settings = SimulatorSettings(
            rate_hz=1.0, seed=100 + i, duration_s=duration, faults=faults, params=params
        )
        fleet.append(SimulatedDevice(f"pump-{i:02d}", settings, operator_plan(100 + i, duration)))
    for device in fleet:
        sync_simulated(engine, device)
    return fleet


def mean_table(records: list[dict[str, Any]], key: str) -> dict[str, list[float]]:
    """channel -> MAE per mark, averaged over devices, for model ``key``."""
    out: dict[str, list[float]] = {}
    for channel in records[0]["candidate"]["mae"][0]:
        out[channel] = [
            float(np.mean([r[key]["mae"][m][channel] for r in records])) for m in range(4)
        ]
    return out


def deployed_after(r: dict[str, Any]) -> dict[str, Any]:
    """What the device runs after the retrain: the fine-tune where promoted."""
    return r["candidate"] if r["verdict"] == "promoted" else r["running"]["scores"]


def print_tables(records: list[dict[str, Any]], title: str) -> None:
    if not records:
        return
    for r in records:
        r["after"] = deployed_after(r)
        r["default"] = r["running"]["scores"]
    rows = {
        "default": mean_table(records, "default"),
        "fleet": mean_table(records, "fleet"),
        "fine-tune": mean_table(records, "candidate"),
        "after": mean_table(records, "after"),
    }
    print(f"\n{title}: what-if MAE on the held-out future, channel units (mean of devices)")
    print(f"{'channel':13s} {'model':10s} " + " ".join(f"{m:>8s}" for m in MARKS))
    for channel in rows["default"]:
        for label, table in rows.items():
            values = table[channel]
            print(f"{channel:13s} {label:10s} " + " ".join(f"{v:8.4f}" for v in values))
        base = rows["default"][channel]
        fleet = rows["fleet"][channel]
        print(
            f"{'':13s} {'fleet/def':10s} "
            + " ".join(
                f"{f / b:8.2f}" if b > 0 else "     n/a" for f, b in zip(fleet, base, strict=True)
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--faulty", type=int, default=3)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--advisor", type=int, default=0, metavar="RUNS")
    parser.add_argument(
        "--advisor-seeds",
        type=int,
        nargs="+",
        default=[0, 1000],
        help="base seeds of the advisor's run sets (0..: docs/advisor.md; 1000..: held out)",
    )
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--twin-only", action="store_true", help="only the twin's part of the retrain"
    )
    parser.add_argument(
        "--varied",
        action="store_true",
        help="pumps unlike the shipped twin's (bearing, current off by up to 25 %%)",
    )
    defaults = TwinRetrainSection()
    parser.add_argument("--pretrain-epochs", type=int, default=defaults.pretrain_epochs)
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'cloud.db'}"
        is_built = (folder / "cloud.db").exists()
        engine = make_engine(url)
        upgrade(engine)
        began = time.perf_counter()
        if not is_built:  # a --keep folder from an earlier run keeps its fleet
            build_fleet(engine, args.devices, args.faulty, args.days, args.varied)
        print(
            f"fleet: {args.devices} simulated pumps x {args.days:g} days at 1 Hz "
            f"({args.faulty} with a fouled bearing now and then"
            f"{'; each pump unlike the shipped twin' if args.varied else ''}), synced as 1-minute "
            f"summaries in {time.perf_counter() - began:.0f} s"
        )
        if not (folder / "release.key").exists():
            # The fleet twin bundle is signed with it, so the advisor part can load it.
            save_keypair(generate_private_key(), folder, "release")
        shutil.rmtree(folder / "reports", ignore_errors=True)
        config = CloudConfig(
            database=DatabaseSection(url=url),
            releases=ReleasesSection(private_key=folder / "release.key"),
            training=TrainingSection(
                reports_dir=folder / "reports",
                n_workers=args.workers,
                twin=TwinRetrainSection(
                    pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs
                ),
            ),
        )
        if args.twin_only:
            began = time.perf_counter()
            twins, fleet_info = twin_part(engine, config, folder / "release.key")
            print(
                f"twin retrain alone on {args.workers} workers: "
                f"{time.perf_counter() - began:.0f} s (fleet twin: {fleet_info.get('summary')})"
            )
        else:
            twins, fleet_info = whole_retrain(engine, config, args.workers)
        records = []
        for d in twins:
            print(f"  {d.device}: {d.reason}")
            if d.report_dir is not None:
                records.append(json.loads((d.report_dir / "decision.json").read_text()))
        faulty = {f"pump-{i:02d}" for i in range(args.faulty)}
        print_tables([r for r in records if r["device"] not in faulty], "healthy devices")
        print_tables([r for r in records if r["device"] in faulty], "devices with a fouled bearing")
        if args.advisor:
            fleet_bundle = folder / "reports" / "fleet" / "twin-bundle"
            for base_seed in args.advisor_seeds:
                advisor_twin_alone(args.advisor, fleet_bundle, folder / "release.pub", base_seed)


def whole_retrain(
    engine: Any, config: CloudConfig, workers: int
) -> tuple[list[Any], dict[str, Any]]:
    """``cloud-sync retrain --fleet`` as the CLI runs it (forecasters and twins), timed."""
    marks: dict[str, float] = {}

    def say(line: str) -> None:
        if "fleet twin" in line and "twin" not in marks:
            marks["twin"] = time.perf_counter()

    began = time.perf_counter()
    outcome = retrain(engine, config, publisher=None, say=say, progress=False)
    ended = time.perf_counter()
    print(
        f"retrain on {workers} workers: {ended - began:.0f} s in all (forecasters and "
        f"twins), of which the twins {ended - marks.get('twin', ended):.0f} s "
        f"(fleet twin: {outcome.twin_fleet.get('summary', 'n/a')})"
    )
    return outcome.twins, outcome.twin_fleet


def twin_part(engine: Any, config: CloudConfig, key_path: Path) -> tuple[list[Any], dict[str, Any]]:
    """Only the twin's part of the retrain (the forecasters left out)."""
    from cloud_sync.training.fanout import dask_client
    from cloud_sync.training.twin_retrain import plan_twins, retrain_twins
    from edgetwin_contracts.signing import load_private_key

    plan = plan_twins(engine, config, device_names(engine), rebuild_fleet=True, say=print)
    with dask_client(None, config.training.n_workers) as client:
        outcome = retrain_twins(
            engine,
            config,
            plan,
            client=client,
            key=load_private_key(key_path),
            signing=str(key_path),
            publish=None,
            say=lambda line: None,
            progress=False,
        )
    return outcome.decisions, outcome.fleet


def advisor_twin_alone(runs: int, fleet_bundle: Path, public_key: Path, base_seed: int = 0) -> None:
    """bench/advisor.py's closed loop (seeds ``base_seed``..), the twin alone as the
    predictor: the shipped default against the fleet twin."""
    from edge_agent.twin.advisor.closedloop import heat_fault_runs, pump_advisor_config, run_fixed
    from edge_agent.twin.config import TwinConfig

    settings = heat_fault_runs(runs, base_seed=base_seed)
    config = pump_advisor_config(predictor="twin", twin_residual_periods=0)
    free = [run_fixed(s, None) for s in settings]
    events = [i for i, r in enumerate(free) if r.overheated]
    for label, twin in (
        ("shipped default", TwinConfig()),
        ("fleet twin", TwinConfig(bundle=fleet_bundle, public_key=public_key)),
    ):
        began = time.perf_counter()
        results = [run_with_twin(s, config, twin) for s in settings]
        prevented = sum(not results[i].overheated for i in events)
        throughput = sum(r.throughput for r in results) / len(results)
        print(
            f"advisor, twin alone ({label}, seeds {base_seed}..): {prevented}/{len(events)} "
            "overheats prevented, "
            f"throughput {throughput:.4f} ({time.perf_counter() - began:.0f} s)"
        )


def run_with_twin(settings: SimulatorSettings, config: Any, twin_config: Any) -> Any:
    """``closedloop.run_with_advisor`` with the twin predictor on ``twin_config``'s twin."""
    from edge_agent.simulator.command import LoadCommand
    from edge_agent.twin.advisor.advisor import Advisor
    from edge_agent.twin.advisor.closedloop import CommandOutput, StoredTwin, _run
    from edge_agent.twin.advisor.twin_predictor import TwinPredictor
    from edge_agent.twin.service import TwinService

    class BundleStoredTwin(StoredTwin):
        def __init__(self) -> None:
            super().__init__(config.control, config.twin_residual_periods)
            twin = TwinService(twin_config, lambda p: p, [], self.store, lambda: self._now)
            self.predictor = TwinPredictor(twin, config.control, config.twin_residual_periods)

    command = LoadCommand()
    output = CommandOutput(command, config.output or "pump-load")
    with BundleStoredTwin() as observer:
        advisor = Advisor(config, observer, output)
        next_step = config.step_s

        def on_frame(t: float, reading: dict[str, float]) -> None:
            nonlocal next_step
            for channel, value in reading.items():
                observer.observe(channel, t, value)
                advisor.observe(channel, t)
            if t >= next_step:
                next_step += config.step_s
                advisor.step(t)

        return _run(settings, command, on_frame, False, 5.0)


if __name__ == "__main__":
    main()
