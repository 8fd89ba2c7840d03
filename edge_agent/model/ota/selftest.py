"""Load a bundle in a child process first, so a model that crashes the interpreter
(a segfault, an abort, a hang) takes down only the child, never the agent.

Child: ``python -m edge_agent.model.ota.selftest BUNDLE_DIR KEY_PEM [BACKEND [PROBES]]``
runs ``load_bundle`` (signature and hash again, interpreter, tensors, golden vectors),
then checks that the model's forecasts are plausible (``implausible``) on its golden
windows and on the channels' current windows (PROBES: a JSON file
``{channel: {"window": [...], "min": m | null, "max": M | null}}``), and prints one
JSON line: {"ok": true, "version": ...} (exit 0) or {"ok": false, "reason": ...}
(exit 2). Golden vectors prove the model runs as its producer ran it, not that what it
forecasts makes sense: a signed release with garbage multi-step forecasts passes them.
Parent: ``run_self_test`` maps a signal, a timeout, a non-zero exit to SelfTestFailed.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.model.ota.errors import SelfTestFailed

if TYPE_CHECKING:
    from edge_agent.model.inference.forecaster import Forecaster
    from edgetwin_contracts.manifest import GoldenVector

CHILD_COMMAND = (sys.executable, "-m", "edge_agent.model.ota.selftest")
_OUTPUT_MAX = 2000
PLAUSIBLE_Z = 25.0
"""A forecast farther than this many window-stds from its window's mean is not a
forecast (training leaves out targets beyond 10, model_export.dataset.FORECASTABLE_Z)."""
_STD_FLOOR_ABS = 1e-6
_STD_FLOOR_REL = 1e-3
"""The std floors of the default normalisation (edgetwin_contracts Normalization), so a
flat window still allows forecasts a little off its value."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A channel's current window (channel units, oldest first) and its cleaning limits
    (None: unlimited): what the self-test runs the new model on."""

    window: list[float]
    min: float | None = None
    max: float | None = None


def implausible(
    forecaster: Forecaster, window: Sequence[float], lo: float | None, hi: float | None
) -> str | None:
    """Why ``forecaster``'s forecasts from ``window`` are not plausible, or None: each
    must be finite, inside [lo, hi] when given, and within PLAUSIBLE_Z window-stds of the
    window's mean."""
    import numpy as np

    values = np.asarray(window, dtype=np.float64)
    forecast = forecaster.forecast(values)
    shown = "[" + ", ".join(f"{v:.6g}" for v in forecast) + "]"
    mean = float(values.mean())
    std = max(float(values.std()), _STD_FLOOR_ABS, _STD_FLOOR_REL * abs(mean))
    for h, v in zip(forecaster.horizons, forecast, strict=True):
        value = float(v)
        if not math.isfinite(value):
            return f"h{h} forecast {value} is not finite ({shown})"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"h{h} forecast {value:.6g} is outside the channel's [{lo}, {hi}] ({shown})"
        if abs(value - mean) > PLAUSIBLE_Z * std:
            return (
                f"h{h} forecast {value:.6g} is {abs(value - mean) / std:.3g} window-stds "
                f"from the window's mean {mean:.6g} ({shown})"
            )
    return None


def run_self_test(
    bundle: Path,
    key_file: Path,
    backend: str,
    timeout_s: float,
    command: Sequence[str] = CHILD_COMMAND,
    probes: Mapping[str, Probe] | None = None,
) -> str:
    """Run the child on ``bundle`` (and the channels' ``probes``); return the model
    version it loaded.

    Raises SelfTestFailed (crash by signal, timeout, refusal, unreadable answer).
    """
    argv = [*command, str(bundle), str(key_file), backend]
    with tempfile.TemporaryDirectory(prefix="edge-agent-selftest-") as tmp:
        if probes:
            path = Path(tmp) / "probes.json"
            path.write_text(
                json.dumps(
                    {
                        name: {"window": p.window, "min": p.min, "max": p.max}
                        for name, p in probes.items()
                    }
                ),
                encoding="utf-8",
            )
            argv.append(str(path))
        answer = run_child(argv, timeout_s, "the model")
    return str(answer.get("version"))


def run_child(argv: Sequence[str], timeout_s: float, what: str) -> dict[str, object]:
    """Run a self-test child (``argv``) that prints one JSON line ``{"ok": ...}`` last;
    return that answer when ok. Shared by the model's and the twin's self-tests
    (``what`` names the bundle in messages).

    Raises SelfTestFailed (crash by signal, timeout, refusal, unreadable answer).
    """
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise SelfTestFailed(f"loading {what} took longer than {timeout_s:g} s") from None
    except OSError as exc:
        raise SelfTestFailed(f"could not start the self-test: {exc}") from None
    out = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise SelfTestFailed(f"the interpreter crashed the self-test process ({name})")
    answer: dict[str, object] = {}
    if out:
        try:
            parsed = json.loads(out[-1])
            if isinstance(parsed, dict):
                answer = parsed
        except ValueError:
            pass
    if done.returncode != 0 or answer.get("ok") is not True:
        reason = answer.get("reason") or done.stderr.decode("utf-8", "replace")[-_OUTPUT_MAX:]
        raise SelfTestFailed(f"exit {done.returncode}: {reason}".strip())
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3, 4):
        print(json.dumps({"ok": False, "reason": "usage: BUNDLE_DIR KEY_PEM [BACKEND [PROBES]]"}))
        return 2
    # Imported here: the parent imports this module for run_self_test only.
    from edge_agent.errors import BackendUnavailable
    from edge_agent.model.bundle import load_bundle
    from edgetwin_contracts.errors import BundleRejected, KeyInvalid
    from edgetwin_contracts.signing import load_public_key

    backend = args[2] if len(args) >= 3 else "auto"
    try:
        loaded = load_bundle(Path(args[0]), load_public_key(Path(args[1])), backend=backend)
        probes = _read_probes(Path(args[3])) if len(args) == 4 else {}
    except (BundleRejected, KeyInvalid, BackendUnavailable, ValueError, OSError) as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}))
        return 2
    reason = _check_plausible(loaded.forecaster, loaded.manifest.golden.vectors, probes)
    if reason is not None:
        print(json.dumps({"ok": False, "reason": f"implausible forecasts: {reason}"}))
        return 2
    print(json.dumps({"ok": True, "version": loaded.manifest.model.version}))
    return 0


def _read_probes(path: Path) -> dict[str, Probe]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a JSON object of probes")
    return {str(name): Probe(**entry) for name, entry in raw.items()}


def _check_plausible(
    forecaster: Forecaster, golden: Sequence[GoldenVector], probes: Mapping[str, Probe]
) -> str | None:
    for i, vector in enumerate(golden):
        reason = implausible(forecaster, vector.input, None, None)
        if reason is not None:
            return f"golden window {i}: {reason}"
    for name, probe in probes.items():
        if len(probe.window) != forecaster.window_length:
            continue  # a window still filling, or of another model: nothing to check
        reason = implausible(forecaster, probe.window, probe.min, probe.max)
        if reason is not None:
            return f"channel {name}: {reason}"
    return None


if __name__ == "__main__":
    sys.exit(main())
