"""The model's period through OTA: a release whose input.sample_period_s a channel
cannot feed is refused (the reason in the report the twin carries); one it can feed
runs on period means; the live guard judges every horizon; the self-test refuses a
signed model whose forecasts are not plausible."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.model.ota.manager import REJECTED_ALARM
from edge_agent.pipeline.shadow import ShadowGuard, guard_verdict
from edgetwin_contracts.batch import ModelUpdateState

from .conftest import RigFactory, sine
from .releases import ReleaseServer, degraded, tar_bundle


def with_period(version: str, period_s: float | None) -> Any:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["version"] = version
        m["input"]["sample_period_s"] = period_s

    return edit


def test_a_period_the_channels_cannot_feed_is_refused_with_the_reason(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig()
    release = server.add(
        "1.1.0", tar_bundle(make_bundle(edit_manifest=with_period("1.1.0", 0.25))), "1.1.0"
    )
    old = r.pipeline.forecaster

    async def scenario() -> None:
        r.feed(40)  # one reading a second on each channel
        await r.manager.update(release)
        await r.manager.aclose()

    asyncio.run(scenario())
    report = r.manager.report()
    assert report.state is ModelUpdateState.REJECTED, report
    reason = report.reason or ""
    assert reason.startswith("period mismatch: the model's period is 0.25 s"), reason
    assert "a every 1 s" in reason and "b every 1 s" in reason, reason
    assert report.bad_versions["1.1.0"] == reason  # what the twin reports to the cloud
    assert r.pipeline.forecaster is old and r.alarms() == [REJECTED_ALARM]


def test_a_release_with_a_longer_period_runs_on_period_means(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig(guard_samples=2)
    release = server.add(
        "1.1.0", tar_bundle(make_bundle(edit_manifest=with_period("1.1.0", 4.0))), "1.1.0"
    )

    async def scenario() -> None:
        r.feed(40)
        await r.manager.update(release)
        assert r.manager.report().state is ModelUpdateState.GUARDING
        steps = [ch.model_steps for ch in r.pipeline.channels.values()]
        r.feed(4 * 60)
        # 240 readings, 1 s apart from a period start, span 60 periods of 4 s; the
        # last stays open: 59 model steps, each on a period's mean.
        after = [
            ch.model_steps - s for ch, s in zip(r.pipeline.channels.values(), steps, strict=True)
        ]
        assert after == [59, 59]
        for _ in range(2000):
            if r.manager.report().state is ModelUpdateState.INSTALLED:
                break
            r.feed(4)
            await asyncio.sleep(0)
        await r.manager.aclose()

    asyncio.run(scenario())
    assert r.manager.report().state is ModelUpdateState.INSTALLED, r.manager.report()
    ch = r.pipeline.channels["a"]
    assert ch.model_period_s == 4.0
    assert ch.horizon_s == [4.0 * h for h in ch.horizons]
    # Every reading still reaches the store and the rules: only the model is slower.
    assert ch.processed == r.fed


class FarOff:
    """The running model, except that its longest horizon is off by ``offset``."""

    def __init__(self, inner: Forecaster, offset: float) -> None:
        self.inner = inner
        self.window_length = inner.window_length
        self.horizons = inner.horizons
        self.offset = offset
        self._out = np.zeros(len(inner.horizons))

    def forecast(self, window: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        self._out[:] = self.inner.forecast(window)
        self._out[-1] += self.offset
        return self._out


def test_the_guard_rolls_back_a_model_only_worse_at_a_long_horizon(rig: RigFactory) -> None:
    r = rig()
    old = r.pipeline.forecaster
    done: list[ShadowGuard] = []
    r.feed(40)
    guard = ShadowGuard(old, 60, done.append, previous_period_s=None, period_s=1.0)
    r.pipeline.swap(FarOff(old, 3.0), guard)  # type: ignore[arg-type]
    r.feed(60, sine)
    assert done == [guard]
    new, prev = guard.mae_by_horizon_new, guard.mae_by_horizon_old
    assert new[:-1] == prev[:-1]  # the one-step MAE alone would keep it
    reason = guard_verdict(guard, 0.10)
    assert reason is not None and reason.startswith("h16 (16 s) MAE"), reason


def test_the_self_test_refuses_garbage_multi_step_forecasts(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    """Issue 15 item 9: a signed release whose golden vectors were recomputed from a
    model that forecasts garbage at some horizons."""
    r = rig()
    bundle = make_bundle(edit_manifest=degraded("1.4.0", min_std_abs=1000.0))
    release = server.add("1.4.0", tar_bundle(bundle), "1.4.0")

    async def scenario() -> None:
        r.feed(40)
        await r.manager.update(release)
        await r.manager.aclose()

    asyncio.run(scenario())
    report = r.manager.report()
    assert report.state is ModelUpdateState.REJECTED, report
    assert "implausible forecasts" in (report.reason or ""), report.reason
    assert "window-stds" in (report.reason or ""), report.reason
