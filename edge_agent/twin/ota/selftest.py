"""The twin release's self-test, in a child process (the model OTA's ``run_child``): a
twin that crashes the interpreter takes down only the child.

Child: ``python -m edge_agent.twin.ota.selftest BUNDLE_DIR KEY_PEM [BACKEND [PROBE]]``
runs ``load_twin`` (signature, hash, tensors, quantization, golden vectors), then rolls
the twin forward over its whole horizon from the device's current state (PROBE: a JSON
file ``{"history": [[...], ...] | null, "bounds": {control: [low, high]}, "limits":
{channel: [min | null, max | null]}}``) and from each golden window, with the controls
held at their last value and at each end of their bounds. Every value must be finite,
inside the channel's cleaning limits, and within PLAUSIBLE_Z training scales of the
channel's training center. Golden vectors prove the int8 step runs as its producer ran
it; they do not prove a roll-out stays sane (a signed twin with a step_scale off by
orders of magnitude passes them and runs away in a few steps).
Prints one JSON line: {"ok": true, "version": ...} (exit 0) or {"ok": false, "reason":
...} (exit 2).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.model.ota.selftest import run_child

if TYPE_CHECKING:
    from edge_agent.twin.model import LoadedTwin

TWIN_CHILD_COMMAND = (sys.executable, "-m", "edge_agent.twin.ota.selftest")
PLAUSIBLE_Z = 25.0
"""A predicted value farther than this many training scales (the channel's std over the
training series) from the channel's training center is not a prediction."""


@dataclass(frozen=True, slots=True)
class TwinProbe:
    """What the self-test rolls the new twin from: the current state ((window_steps,
    channels) in the new twin's channel order; None: not available, golden windows
    only), the controls' scenario bounds, the channels' cleaning limits."""

    history: list[list[float]] | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


def run_twin_self_test(
    bundle: Path,
    key_file: Path,
    backend: str,
    timeout_s: float,
    probe: TwinProbe | None = None,
    command: Sequence[str] = TWIN_CHILD_COMMAND,
) -> str:
    """Run the child on ``bundle``; return the twin version it loaded.

    Raises SelfTestFailed (crash by signal, timeout, refusal, implausible roll-out).
    """
    argv = [*command, str(bundle), str(key_file), backend]
    with tempfile.TemporaryDirectory(prefix="edge-agent-twintest-") as tmp:
        if probe is not None:
            path = Path(tmp) / "probe.json"
            data = {"history": probe.history, "bounds": probe.bounds, "limits": probe.limits}
            path.write_text(json.dumps(data), encoding="utf-8")
            argv.append(str(path))
        answer = run_child(argv, timeout_s, "the twin")
    return str(answer.get("version"))


def implausible_rollout(
    twin: LoadedTwin,
    history: Sequence[Sequence[float]],
    bounds: Mapping[str, tuple[float, float]],
    limits: Mapping[str, tuple[float | None, float | None]],
) -> str | None:
    """Why a roll-out of ``twin`` over its horizon from ``history`` is not plausible
    under the controls held at their last value or at either bound, or None."""
    import numpy as np

    model = twin.model
    spec = twin.spec
    n_out = len(model.outputs)
    model.load_state(np.asarray(history, dtype=np.float64))
    last = np.asarray(history, dtype=np.float64)[-1, n_out:]
    plans = {"held at their last value": last}
    for j, name in enumerate(model.controls):
        if name in bounds:
            for end, value in zip(("low", "high"), bounds[name], strict=True):
                held = last.copy()
                held[j] = value
                plans[f"{name} at its {end} bound {value:g}"] = held
    for label, values in plans.items():
        controls = np.tile(values, (spec.horizon_steps, 1))
        with np.errstate(all="ignore"):
            path = model.roll(controls)
        for j, channel in enumerate(spec.channels[:n_out]):
            lo, hi = limits.get(channel.name, (None, None))
            reason = _implausible_path(
                path[:, j].tolist(), channel.name, channel.center, channel.scale, lo, hi
            )
            if reason is not None:
                return f"controls {label}: {reason}"
    return None


def _implausible_path(
    values: Sequence[float],
    name: str,
    center: float,
    scale: float,
    lo: float | None,
    hi: float | None,
) -> str | None:
    import math

    for step, v in enumerate(values, start=1):
        value = float(v)
        ahead = f"{step} period{'s' if step > 1 else ''} ahead"
        if not math.isfinite(value):
            return f"{name} is {value} {ahead}"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{name} {value:.6g} {ahead} is outside its [{lo}, {hi}]"
        if abs(value - center) > PLAUSIBLE_Z * scale:
            return (
                f"{name} {value:.6g} {ahead} is {abs(value - center) / scale:.3g}"
                f" training scales from its center {center:.6g}"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3, 4):
        print(json.dumps({"ok": False, "reason": "usage: BUNDLE_DIR KEY_PEM [BACKEND [PROBE]]"}))
        return 2
    # Imported here: the parent imports this module for run_twin_self_test only.
    from edge_agent.errors import BackendUnavailable
    from edge_agent.twin.errors import TwinError
    from edge_agent.twin.model import load_twin
    from edgetwin_contracts.errors import ContractError
    from edgetwin_contracts.signing import load_public_key

    backend = args[2] if len(args) >= 3 else "auto"
    try:
        twin = load_twin(Path(args[0]), load_public_key(Path(args[1])), backend=backend)
        probe = _read_probe(Path(args[3])) if len(args) == 4 else TwinProbe()
        reason = _check(twin, probe)
    except (ContractError, TwinError, BackendUnavailable, ValueError, OSError) as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}))
        return 2
    if reason is not None:
        print(json.dumps({"ok": False, "reason": f"implausible roll-out: {reason}"}))
        return 2
    print(json.dumps({"ok": True, "version": twin.manifest.model.version}))
    return 0


def _read_probe(path: Path) -> TwinProbe:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a JSON object")
    return TwinProbe(
        history=raw.get("history"),
        bounds={str(k): (float(v[0]), float(v[1])) for k, v in raw.get("bounds", {}).items()},
        limits={str(k): (v[0], v[1]) for k, v in raw.get("limits", {}).items()},
    )


def _check(twin: LoadedTwin, probe: TwinProbe) -> str | None:
    spec = twin.spec
    w, n_ch = spec.window_steps, len(spec.channels)
    starts: list[tuple[str, list[list[float]]]] = []
    if probe.history is not None and len(probe.history) == w:
        starts.append(("the current state", probe.history))
    for i, vector in enumerate(twin.manifest.golden.vectors):
        flat = list(vector.input[: w * n_ch])
        starts.append((f"golden window {i}", [flat[r * n_ch : (r + 1) * n_ch] for r in range(w)]))
    for label, history in starts:
        reason = implausible_rollout(twin, history, probe.bounds, probe.limits)
        if reason is not None:
            return f"from {label}, {reason}"
    return None


if __name__ == "__main__":
    sys.exit(main())
