"""What a new user meets first (issue 16): a config written for them, one spelling of
CONFIG, a replay that names its model and draws a picture, a doctor that says what to
do without a config, and one line (no traceback) for a command whose extra is missing."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge_agent.simulator import SimulatorSettings, serial_config_for
from tests.conftest import REPO
from tests.edge_agent.integration.helpers import T0, run_cli

EXAMPLE = REPO / "examples" / "agent.toml"

# Runs a CLI's main with the cloud and export extras' modules made unimportable, as on a
# device that installed edgetwin alone.
WITHOUT_EXTRAS = """
import sys
for name in ("sqlalchemy", "alembic", "jinja2", "dask", "distributed", "psycopg",
             "tensorflow", "keras", "tf_keras"):
    sys.modules[name] = None
import importlib
module, *argv = sys.argv[1:]
sys.exit(importlib.import_module(module).main(argv))
"""


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("cloud_sync.cli", ["--help"], "cloud"),
        ("cloud_sync.cli", ["devices", "list"], "cloud"),
        ("edge_agent.cli", ["demo", "--duration", "10"], "cloud"),
    ],
)
def test_missing_extra_is_one_line_and_exit_2(
    tmp_path: Path, module: str, argv: list[str], extra: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, module, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith(
        f"needs the {extra} extra: pip install 'edgetwin[{extra}]'"
    ), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_model_export_training_without_tensorflow_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("timestamp,value\n" + "".join(f"{T0 + 60 * i},{i % 7}\n" for i in range(400)))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_EXTRAS,
            "model_export.cli",
            "build",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m.keras"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "model-export build needs the export extra: pip install 'edgetwin[export]'"
    )
    assert done.stdout == ""  # said before any work


def test_init_config_writes_a_commented_config_that_checks(tmp_path: Path) -> None:
    done = run_cli(
        ["init-config", "agent.toml", "--name", "pump-1", "--data-dir", str(tmp_path)], tmp_path
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "agent.toml").read_text()
    assert text.startswith("# ") and 'name = "pump-1"' in text
    assert tomllib.loads(text)["agent"]["data_dir"] == str(tmp_path)
    for spelling in (["agent.toml"], ["--config", "agent.toml"]):
        checked = run_cli(["check-config", *spelling], tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert "agent.toml: OK" in checked.stdout
    again = run_cli(["init-config", "agent.toml"], tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_doctor_without_a_config_says_init_config(tmp_path: Path) -> None:
    missing = tmp_path / "agent.toml"
    done = run_cli(["doctor", str(missing)], tmp_path)
    assert done.returncode == 1
    line = f"no config at {missing}: write one with `edge-agent init-config {missing}`"
    assert line in done.stdout
    assert done.stdout.count(str(missing)) == 2  # the path, and the command that writes it
    assert "check-config" not in done.stdout


def test_replay_honours_the_config_replay_source_and_draws(tmp_path: Path) -> None:
    """A [[sources]] type = "replay" names the file, its time column and a scale; the
    replay uses them, names its model, prints ISO times and draws the picture."""
    data = tmp_path / "pump.csv"
    rows = ["when,temp_dc"]
    for i in range(900):
        value = 500 + (400 if 600 <= i < 640 else 0) + (i % 5)  # tenths of a degree
        rows.append(f"{T0 + i},{value}")
    data.write_text("\n".join(rows) + "\n")
    config = tmp_path / "replay.toml"
    config.write_text(
        f"""
[agent]
data_dir = "{tmp_path}"

[[sources]]
type = "replay"
name = "history"
path = "{data}"
timestamp_column = "when"
[sources.columns.temp_dc]
channel = "temp"
scale = 0.1

[[alarms]]
name = "hot"
channel = "temp"
type = "value_above"
set = 80.0
clear = 70.0
"""
    )
    out, png = tmp_path / "results.csv", tmp_path / "replay.png"
    done = run_cli(["replay", str(config), "--out", str(out), "--plot", str(png)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model: edgetwin-generic-forecaster" in done.stdout
    assert "alarms raised: 1" in done.stdout
    assert "  2023-11-14T22:23:20+00:00 warning  hot on temp" in done.stdout
    with out.open(newline="") as handle:
        results = list(csv.DictReader(handle))
    assert {r["channel"] for r in results} == {"temp"}
    assert float(results[0]["value"]) == pytest.approx(50.0)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert f"plot: {png}" in done.stdout


def test_replay_plot_without_matplotlib_is_one_line(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from edge_agent.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "replay", "--sample", "--plot", str(tmp_path / "p.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "edge-agent replay: --plot needs matplotlib: pip install matplotlib "
        "(the cloud extra has it)"
    )


def test_model_bench_of_an_own_bundle_names_public_key(tmp_path: Path) -> None:
    from edge_agent.model.shipped import DEFAULT_BUNDLE

    # A copy of the shipped bundle whose manifest no longer matches its signature.
    bundle = tmp_path / "mine"
    bundle.mkdir()
    for f in Path(DEFAULT_BUNDLE).iterdir():
        (bundle / f.name).write_bytes(f.read_bytes())
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"', 1))
    done = run_cli(["model", "bench", str(bundle), "--samples", "100"], tmp_path)
    assert done.returncode == 1
    assert "--public-key" in done.stderr


def test_example_config_reads_the_simulator_as_it_prints() -> None:
    """Each field of the example's serial source maps to the simulator's channel with
    the simulator's units (no scale the simulator does not need)."""
    example = tomllib.loads(EXAMPLE.read_text())["sources"][0]
    simulator = serial_config_for(SimulatorSettings(), "/dev/null")
    assert example["csv_fields"] == simulator.csv_fields
    for field, mapping in simulator.fields.items():
        assert example["fields"][field]["channel"] == mapping.channel
        assert example["fields"][field].get("scale", 1.0) == mapping.scale
        assert example["fields"][field].get("offset", 0.0) == mapping.offset
