"""Power cut at every step of an update: a child process installing a release is
SIGKILLed right after each step; the next start must load a verified model (the old or
the new, never a broken one) and a new attempt must complete the install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import parse_config
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.selection import load_model

from .conftest import REPO_ROOT
from .releases import ReleaseServer, tar_bundle, versioned

STEPS = [
    "downloaded",
    "extracted",
    "verified",
    "self_tested",
    "installed",
    "trial",
    "swapped",
    "pointer",
]


def child(
    models: Path, key_file: Path, url: str, release: Any, step: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.edge_agent.model.ota.powercut_child",
            str(models),
            str(key_file),
            url,
            release.model_dump_json(),
            step,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_after_each_step_leaves_a_loadable_model(
    step: str, tmp_path: Path, key_file: Path, server: ReleaseServer, make_bundle: Any
) -> None:
    folder = make_bundle(edit_manifest=versioned("1.1.0"))
    release = server.add("1.1.0", tar_bundle(folder), "1.1.0")
    models = tmp_path / "models"

    killed = child(models, key_file, server.url, release, step)
    assert killed.returncode == -9, killed.stderr[-2000:]

    after_cut = load_model(parse_config("").model, ModelsDir(models), key_file)
    expected = "1.1.0" if step == "pointer" else "1.0.0"
    assert after_cut.manifest.model.version == expected

    again = child(models, key_file, server.url, release, "none")
    assert again.returncode == 0, again.stderr[-2000:]
    if step == "pointer":
        assert again.stdout.split()[1] == "1.1.0"
    else:
        assert again.stdout.split() == ["installed", "1.1.0"], again.stdout
    final = load_model(parse_config("").model, ModelsDir(models), key_file)
    assert final.manifest.model.version == "1.1.0"
    names = {p.name for p in models.iterdir()}
    assert not any(n.startswith(".tmp-") or n.endswith(".tmp") for n in names), names
    assert "trial.json" not in names
