"""The twin's self-test: the roll-out checks in process, and the real child crashing or
refusing (the agent keeps its twin)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.twin.errors import TwinStateIncomplete
from edge_agent.twin.model import load_twin
from edge_agent.twin.ota.selftest import implausible_rollout
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edgetwin_contracts.batch import ModelUpdateState

from ...model.ota.releases import ReleaseServer
from .conftest import TwinPublisher
from .rig import WARM_S, build_rig


def _runaway(m: dict[str, Any]) -> None:
    m["twin"]["channels"][0]["step_scale"] = 1e300


def test_a_sane_twin_passes_and_a_runaway_one_is_named(
    tmp_path: Path, key_file: Path, make_bundle: Any, release_key: Ed25519PrivateKey
) -> None:
    rig = build_rig(tmp_path, key_file, "http://127.0.0.1:9")
    rig.pump.run_until(WARM_S)
    history, _ = rig.service.state(rig.pump.t, flush=False)
    rig.close()
    shipped = load_twin(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
    bounds = {"load": (0.0, 1.0)}
    assert implausible_rollout(shipped, history.tolist(), bounds, {}) is None
    runaway = load_twin(
        make_bundle(edit_manifest=_runaway, source=DEFAULT_TWIN_BUNDLE), release_key.public_key()
    )
    # Without cleaning limits, the distance from the training center catches it.
    reason = implausible_rollout(runaway, history.tolist(), bounds, {})
    assert reason is not None and reason.startswith("controls held at their last value: ")
    assert "bearing_temp" in reason and "training scales from its center" in reason
    # A state far outside the training range is refused before rolling.
    # (the child reports it as its refusal).
    wild = np.asarray(history) * 1e9
    with pytest.raises(TwinStateIncomplete, match="outside the twin's range"):
        implausible_rollout(shipped, wild.tolist(), bounds, {})


def test_a_crashing_twin_self_test_only_takes_the_child_down(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    crash = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    rig = build_rig(tmp_path, key_file, server.url, command=crash)
    rig.pump.run_until(WARM_S)
    release = publish_twin("1.1.0")

    async def scenario() -> None:
        await rig.manager.update(release)
        await rig.manager.aclose()

    asyncio.run(scenario())
    report = rig.manager.report()
    assert report.state is ModelUpdateState.REJECTED
    assert "the interpreter crashed the self-test process (SIGSEGV)" in (report.reason or "")
    assert rig.service.twin is not None
    assert rig.service.twin.manifest.model.version == "1.0.0"
    rig.close()
