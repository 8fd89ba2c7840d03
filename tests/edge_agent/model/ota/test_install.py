"""The OTA path against a real release server: install + guard, every bad input,
a crashing or hanging self-test child, resumed downloads, rollback by the guard."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.model.ota.manager import REJECTED_ALARM, ROLLBACK_ALARM
from edge_agent.pipeline.shadow import ShadowGuard
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_contracts.batch import ModelRelease, ModelUpdateState
from edgetwin_contracts.manifest import MANIFEST_FILE

from .conftest import Rig, RigFactory, sine
from .releases import ReleaseServer, degraded, tar_bundle, versioned


async def settle(rig: Rig, until: Callable[[], bool], feed: int = 1) -> None:
    for _ in range(2000):
        if until():
            return
        rig.feed(feed)
        await asyncio.sleep(0)
    raise AssertionError(f"never settled: {rig.manager.report()}")


def publish(server: ReleaseServer, make_bundle: Any, version: str, **kw: Any) -> ModelRelease:
    folder = make_bundle(edit_manifest=versioned(version))
    return server.add(version, tar_bundle(folder), version, **kw)


def test_release_installs_swaps_between_samples_and_passes_the_guard(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig()
    release = publish(server, make_bundle, "1.1.0")

    async def scenario() -> None:
        r.feed(40)
        old = r.pipeline.forecaster
        await r.manager.update(release)
        assert r.manager.report().state is ModelUpdateState.GUARDING
        assert r.pipeline.forecaster is not old and r.pipeline.guard is not None
        await settle(r, lambda: r.manager.report().state is ModelUpdateState.INSTALLED)
        await r.manager.aclose()

    asyncio.run(scenario())
    assert r.manager.running_version == "1.1.0"
    assert r.pipeline.guard is None
    # Every reading was processed exactly once across the swap.
    assert [ch.processed for ch in r.pipeline.channels.values()] == [r.fed, r.fed]
    assert len(r.sink.rows) == len(set(r.sink.rows)) == 2 * r.fed
    pointer = json.loads((r.models.root / "current.json").read_text())
    assert pointer["version"] == "1.1.0" and (r.models.root / pointer["dir"]).is_dir()
    assert not (r.models.root / "trial.json").exists()
    assert not any(r.models.partial_dir.iterdir())
    assert r.alarms() == []
    report = r.manager.report()
    assert report.guard_samples is not None and report.guard_samples > 0
    assert report.guard_mae_new is not None and report.guard_mae_old is not None


def _bad_signature(make_bundle: Any) -> Path:
    folder = make_bundle(edit_manifest=versioned("1.2.0"))
    data = json.loads((folder / MANIFEST_FILE).read_bytes())
    data["model"]["description"] = "tampered after signing"
    (folder / MANIFEST_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return folder


def _golden(m: dict[str, Any]) -> None:
    m["model"]["version"] = "1.2.0"
    m["golden"]["vectors"][0]["output_q"] = [
        min(127, q + 40) for q in m["golden"]["vectors"][0]["output_q"]
    ]


def _quant(m: dict[str, Any]) -> None:
    m["model"]["version"] = "1.2.0"
    m["quantization"]["output"]["scale"] *= 2


def _shape(m: dict[str, Any]) -> None:
    m["model"]["version"] = "1.2.0"
    m["output"]["horizons"] = [1, 2, 4, 8, 16, 32]
    m["output"]["shape"] = [1, 6]
    for v in m["golden"]["vectors"]:
        v["output_q"].append(0)
        v["output"].append(0.0)


CASES: dict[str, tuple[Callable[[Any, ReleaseServer], ModelRelease], str]] = {
    "wrong-hash": (
        lambda mb, s: publish(s, mb, "1.2.0").model_copy(update={"sha256": "0" * 64}),
        "archive sha256",
    ),
    "wrong-size": (
        lambda mb, s: publish(s, mb, "1.2.0").model_copy(update={"size_bytes": 1 << 20}),
        "archive is",
    ),
    "bad-signature": (
        lambda mb, s: s.add("1.2.0", tar_bundle(_bad_signature(mb)), "1.2.0"),
        "bad signature",
    ),
    "golden-vectors": (
        lambda mb, s: s.add("1.2.0", tar_bundle(mb(edit_manifest=_golden)), "1.2.0"),
        "golden vectors",
    ),
    "quantization": (
        lambda mb, s: s.add("1.2.0", tar_bundle(mb(edit_manifest=_quant)), "1.2.0"),
        "tensor spec",
    ),
    "tensor-shapes": (
        lambda mb, s: s.add("1.2.0", tar_bundle(mb(edit_manifest=_shape)), "1.2.0"),
        "horizons",
    ),
    "truncated": (lambda mb, s: publish(s, mb, "1.2.0", mode="truncate"), "as served"),
    "html": (lambda mb, s: publish(s, mb, "1.2.0", mode="html"), "server answered HTML"),
    "html-as-tar": (
        lambda mb, s: s.add("1.2.0", b"<!DOCTYPE html>" + b" " * 2000, "1.2.0"),
        "server answered HTML",
    ),
    "extra-member": (
        lambda mb, s: s.add(
            "1.2.0",
            tar_bundle(mb(edit_manifest=versioned("1.2.0")), {"../evil": b"x"}),
            "1.2.0",
        ),
        "unexpected member",
    ),
    "downgrade": (lambda mb, s: publish(s, mb, "0.9.0"), "older than the running model"),
    "twin-bundle": (
        lambda mb, s: s.add(
            "1.2.0",
            tar_bundle(mb(edit_manifest=versioned("1.2.0"), source=DEFAULT_TWIN_BUNDLE)),
            "1.2.0",
        ),
        "is a twin bundle",
    ),
    "version-mismatch": (
        lambda mb, s: publish(s, mb, "1.2.0").model_copy(update={"version": "1.3.0"}),
        "manifest says version 1.2.0",
    ),
    "too-large": (
        lambda mb, s: publish(s, mb, "1.2.0").model_copy(update={"size_bytes": 64 << 20}),
        "max_bundle_bytes",
    ),
    "not-found": (
        lambda mb, s: publish(s, mb, "1.2.0").model_copy(update={"url": "/v1/releases/x/bundle"}),
        "HTTP 404",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_release_is_rejected_and_the_old_model_keeps_serving(
    case: str, rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig()
    build, expected = CASES[case]
    release = build(make_bundle, server)
    old = r.pipeline.forecaster

    async def scenario() -> None:
        r.feed(40)
        await r.manager.update(release)
        r.feed(5)
        await r.manager.aclose()

    asyncio.run(scenario())
    report = r.manager.report()
    assert report.state is ModelUpdateState.REJECTED, report
    assert expected in (report.reason or ""), report.reason
    assert report.version == release.version
    assert release.version in report.bad_versions
    assert r.pipeline.forecaster is old and r.manager.running_version == "1.0.0"
    assert r.alarms() == [REJECTED_ALARM]
    assert [ch.processed for ch in r.pipeline.channels.values()] == [45, 45]
    assert not (r.models.root / "current.json").exists()
    leftovers = [p.name for p in r.models.root.iterdir() if p.name != "bad_versions.json"]
    assert set(leftovers) <= {".partial"}
    assert not any(r.models.partial_dir.iterdir())
    # Offered again: refused at once as known bad.
    assert "known bad" in (r.manager.request(release) or "")


@pytest.mark.parametrize(
    ("command", "timeout", "expected"),
    [
        (
            (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
            30.0,
            "crashed the self-test process (SIGSEGV)",
        ),
        ((sys.executable, "-c", "import time; time.sleep(30)"), 0.5, "longer than 0.5 s"),
        ((sys.executable, "-c", "raise SystemExit(3)"), 30.0, "exit 3"),
    ],
    ids=["segfault", "hang", "exit-code"],
)
def test_a_crashing_or_hanging_model_only_takes_the_child_down(
    command: tuple[str, ...],
    timeout: float,
    expected: str,
    rig: RigFactory,
    server: ReleaseServer,
    make_bundle: Any,
) -> None:
    r = rig(command=command, self_test_timeout_s=timeout)
    release = publish(server, make_bundle, "1.2.0")

    async def scenario() -> None:
        await r.manager.update(release)
        await r.manager.aclose()

    asyncio.run(scenario())
    report = r.manager.report()
    assert report.state is ModelUpdateState.REJECTED
    assert expected in (report.reason or ""), report.reason
    assert r.manager.running_version == "1.0.0"


def test_a_real_self_test_timeout_on_the_real_child(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig(self_test_timeout_s=0.01)  # the interpreter cannot even start in 10 ms
    release = publish(server, make_bundle, "1.2.0")

    async def scenario() -> None:
        await r.manager.update(release)
        await r.manager.aclose()

    asyncio.run(scenario())
    assert "longer than 0.01 s" in (r.manager.report().reason or "")


def test_crafted_tflite_with_valid_signature_is_rejected_whatever_the_interpreter_does(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    import hashlib

    def cut(model: bytes) -> bytes:
        return model[: len(model) // 3]

    folder = make_bundle(edit_model=cut, sign=False)

    def fix(m: dict[str, Any]) -> None:
        data = (folder / "model.tflite").read_bytes()
        m["model"]["version"] = "1.2.0"
        m["file"]["sha256"] = hashlib.sha256(data).hexdigest()
        m["file"]["size_bytes"] = len(data)

    signed = make_bundle(edit_manifest=fix, source=folder)
    release = server.add("1.2.0", tar_bundle(signed), "1.2.0")

    async def scenario() -> None:
        await r.manager.update(release)
        await r.manager.aclose()

    r = rig()
    asyncio.run(scenario())
    report = r.manager.report()
    assert report.state is ModelUpdateState.REJECTED
    assert "self-test failed" in (report.reason or "")


def test_an_interrupted_download_resumes_with_a_range_request(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig()
    release = publish(server, make_bundle, "1.1.0", mode="drop_once")

    async def scenario() -> None:
        await r.manager.update(release)
        await r.manager.aclose()

    asyncio.run(scenario())
    assert r.manager.report().state is ModelUpdateState.GUARDING, r.manager.report()
    ranges = [rng for name, rng in server.requests if name == "1.1.0"]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0


def test_a_worse_model_is_rolled_back_by_the_live_guard(
    rig: RigFactory, server: ReleaseServer, make_bundle: Any
) -> None:
    r = rig(guard_samples=80, guard_margin=0.10)
    folder = make_bundle(edit_manifest=degraded("1.3.0"))
    release = server.add("1.3.0", tar_bundle(folder), "1.3.0")

    async def scenario() -> None:
        r.feed(40)
        old = r.pipeline.forecaster
        await r.manager.update(release)
        assert r.manager.report().state is ModelUpdateState.GUARDING
        await settle(r, lambda: r.manager.report().state is ModelUpdateState.ROLLED_BACK)
        assert r.pipeline.forecaster is old
        await r.manager.aclose()

    asyncio.run(scenario())
    report = r.manager.report()
    assert "MAE" in (report.reason or "") and "worse by more than" in (report.reason or "")
    assert report.bad_versions["1.3.0"] == report.reason
    # The guard's figures travel with the report: both models on the same samples.
    assert report.guard_samples == 80
    assert report.guard_mae_new is not None and report.guard_mae_old is not None
    assert report.guard_mae_new > report.guard_mae_old * 1.10
    assert r.manager.running_version == "1.0.0" and r.pipeline.guard is None
    assert r.alarms() == [ROLLBACK_ALARM]
    assert not (r.models.root / "current.json").exists()
    assert json.loads((r.models.root / "bad_versions.json").read_text())["1.3.0"]
    assert len(r.sink.rows) == len(set(r.sink.rows)) == 2 * r.fed


class Exploding:
    """A forecaster that fails at its third call (stands in for a model that breaks)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.window_length = inner.window_length
        self.horizons = inner.horizons
        self.calls = 0

    def forecast(self, window: Any) -> Any:
        self.calls += 1
        if self.calls >= 3:
            raise RuntimeError("interpreter invoke failed")
        return self.inner.forecast(window)


def test_a_failing_model_in_the_guard_is_swapped_back_within_the_sample(
    rig: RigFactory,
) -> None:
    r = rig()
    old = r.pipeline.forecaster
    done: list[ShadowGuard] = []

    r.feed(40)
    guard = ShadowGuard(old, 100, done.append)
    r.pipeline.swap(Exploding(old), guard)  # type: ignore[arg-type]
    r.feed(5)
    assert done == [guard] and "interpreter invoke failed" in (guard.failure or "")
    assert r.pipeline.forecaster is old and r.pipeline.guard is None
    assert [ch.processed for ch in r.pipeline.channels.values()] == [45, 45]
    assert all(ch.has_forecast for ch in r.pipeline.channels.values())


def test_the_guard_compares_the_same_samples(rig: RigFactory) -> None:
    r = rig()
    old = r.pipeline.forecaster
    done: list[ShadowGuard] = []
    r.feed(40)
    guard = ShadowGuard(old, 30, done.append)
    r.pipeline.swap(old, guard)  # the same model in shadow: identical errors
    # Every horizon is judged: the first step counted is the one the longest horizon's
    # shadow forecast (made after the swap) is due at.
    r.feed(max(old.horizons) + 14, sine)
    assert done == []
    r.feed(1, sine)
    assert done == [guard]
    assert guard.samples == 30 and guard.mae_by_horizon_new == guard.mae_by_horizon_old
    assert len(guard.mae_by_horizon_new) == len(old.horizons)
