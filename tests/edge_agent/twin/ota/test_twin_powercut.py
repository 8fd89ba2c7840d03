"""Power cut at every step of a twin update: a child process installing a twin release
is SIGKILLed right after each step; the next start must have a working twin (the old or
the new, never none or a broken one), a stop during the guard counts a trial, and a new
attempt completes the install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.twin.scenario import Scenario, Segment
from edgetwin_contracts.batch import ModelRelease, ModelUpdateReport, ModelUpdateState

from ...model.ota.releases import ReleaseServer
from .conftest import TwinPublisher
from .rig import WARM_S, build_rig

REPO_ROOT = Path(__file__).resolve().parents[4]
STEPS = [
    "twin-downloaded",
    "twin-extracted",
    "twin-verified",
    "twin-self_tested",
    "twin-installed",
    "twin-trial",
    "twin-swapped",
    "twin-pointer",
]


def child(
    root: Path, key_file: Path, url: str, release: ModelRelease, step: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.edge_agent.twin.ota.powercut_child",
            str(root),
            str(key_file),
            url,
            release.model_dump_json(),
            step,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_after_each_twin_step_leaves_a_working_twin(
    step: str, tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    release = publish_twin("1.1.0")
    root = tmp_path / "device"
    killed = child(root, key_file, server.url, release, step)
    assert killed.returncode == -9, killed.stderr[-2000:]

    # The next start: a twin that verifies and rolls forward.
    rig = build_rig(root, key_file, server.url, store_name="restart.db")
    twin = rig.service.twin
    assert twin is not None, rig.service.unavailable
    expected = "1.1.0" if step == "twin-pointer" else "1.0.0"
    assert twin.manifest.model.version == expected
    rig.pump.run_until(WARM_S)
    answer = rig.service.what_if(Scenario(controls={"load": [Segment(value=0.8, minutes=20)]}))
    assert all(np.isfinite(c.values).all() for c in answer.channels)
    assert not any(p.name.startswith(".tmp-") for p in rig.twins.root.iterdir())
    if step == "twin-swapped":  # stopped during the guard: one trial counted
        trial = json.loads((rig.twins.root / "trial.json").read_text())
        assert trial["version"] == "1.1.0" and trial["attempts"] == 1
    rig.close()

    if step == "twin-pointer":
        return  # installed already
    done = child(root, key_file, server.url, release, "none")
    assert done.returncode == 0, done.stderr[-2000:]
    report = ModelUpdateReport.model_validate_json(done.stdout.strip().splitlines()[-1])
    assert report.state is ModelUpdateState.INSTALLED, report
    again = build_rig(root, key_file, server.url, store_name="again.db")
    assert again.service.twin is not None
    assert again.service.twin.manifest.model.version == "1.1.0"
    again.close()


def test_a_twin_stopped_in_its_guard_twice_is_marked_bad(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    release = publish_twin("1.1.0")
    root = tmp_path / "device"
    for _ in range(2):
        killed = child(root, key_file, server.url, release, "twin-swapped")
        assert killed.returncode == -9, killed.stderr[-2000:]
    rig = build_rig(root, key_file, server.url, store_name="restart.db")
    assert rig.service.twin is not None
    assert rig.service.twin.manifest.model.version == "1.0.0"
    bad = rig.manager.report().bad_versions
    assert "the agent stopped 2 times during the live guard of 1.1.0" in bad["1.1.0"]
    assert not (rig.twins.root / "trial.json").exists()
    rig.close()
