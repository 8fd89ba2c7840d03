"""The twin's live guard on real twins and the simulated pump's stored periods: equal
twins keep, a runaway twin is rolled back at its first period, periods count once each
and only after the swap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.twin.model import load_twin
from edge_agent.twin.ota.guard import TwinGuard
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key

from .rig import WARM_S, build_rig


def _runaway(m: dict[str, Any]) -> None:
    m["twin"]["channels"][0]["step_scale"] = 1e300


def test_the_guard_counts_each_period_after_the_swap_once_and_fails_a_runaway(
    tmp_path: Path, key_file: Path, make_bundle: Any, release_key: Ed25519PrivateKey
) -> None:
    rig = build_rig(tmp_path, key_file, "http://127.0.0.1:9")
    rig.pump.run_until(WARM_S)
    shipped = load_twin(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
    same = load_twin(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
    guard = TwinGuard(same, shipped, periods=3, steps=5, since=rig.pump.t)
    assert guard.history_periods == 16 + 5
    history, end = rig.service.state(rig.pump.t, flush=False, periods=guard.history_periods)
    assert not guard.observe(history, end)  # ended before the swap: not counted
    for minute in range(1, 4):
        rig.pump.run_until(WARM_S + 60.0 * minute)
        history, end = rig.service.state(rig.pump.t, flush=False, periods=guard.history_periods)
        assert guard.observe(history, end)
        assert not guard.observe(history, end)  # the same period again: not counted
    assert guard.is_done and guard.periods == 3
    assert guard.mae_new == guard.mae_old and guard.verdict(0.0) is None

    runaway = load_twin(
        make_bundle(edit_manifest=_runaway, source=DEFAULT_TWIN_BUNDLE), release_key.public_key()
    )
    failing = TwinGuard(runaway, shipped, periods=1, steps=5, since=0.0)
    assert failing.observe(history, end)
    assert failing.is_done
    # Its path runs off by ~1e299 (or to inf): either way it is rolled back.
    verdict = failing.verdict(0.10)
    assert verdict is not None
    assert "worse by more than 10%" in verdict or "non-finite" in verdict, verdict
    rig.close()
