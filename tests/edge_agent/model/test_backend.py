"""Backend selection, and the rule that the device never imports TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge_agent.errors import BackendUnavailable
from edge_agent.model.inference.backend import Backend, resolve
from tests.conftest import REPO, require

TFLITE_VENV = REPO / ".venv-tflite"


def test_unknown_backend_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown inference backend 'onnx'.*ai-edge-litert"):
        resolve("onnx")


def test_environment_variable_picks_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGETWIN_BACKEND", "no-such-backend")
    with pytest.raises(ValueError, match="no-such-backend"):
        resolve("auto")


def test_unavailable_backend_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module set to None in sys.modules fails to import, as a missing wheel would.
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(
        BackendUnavailable, match=r"ai-edge-litert: \w*Error.*tflite-runtime: \w*Error"
    ):
        resolve("auto")


def test_auto_prefers_litert_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGETWIN_BACKEND", raising=False)
    backend, _ = resolve("auto")
    assert backend is Backend.LITERT
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    try:
        backend, _ = resolve("auto")
    except BackendUnavailable as exc:  # this venv has no tflite-runtime: the reason says so
        assert "tflite-runtime" in str(exc)
    else:
        assert backend is Backend.TFLITE_RUNTIME


def test_loading_and_running_a_bundle_never_imports_tensorflow() -> None:
    code = (
        "import sys, numpy as np\n"
        "import edge_agent, edge_agent.cli, edgetwin_demo, edge_agent.model.demo\n"
        "import edge_agent.daemon.agent, edge_agent.pipeline.backtest\n"
        "from edge_agent.model.bundle import load_bundle\n"
        "from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key\n"
        "m = load_bundle(DEFAULT_BUNDLE, default_public_key())\n"
        "m.forecaster.forecast(np.linspace(0, 1, m.forecaster.window_length))\n"
        "heavy = {'tensorflow', 'keras', 'tf_keras'}\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in heavy)\n"
        "print('IMPORTED', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_contract_suite_passes_on_tflite_runtime() -> None:
    """The forecaster and bundle-rejection suites again, in the second venv where
    tflite-runtime 2.14 (numpy < 2) is the backend (`make test` builds that venv)."""
    unavailable = TFLITE_VENV / "UNAVAILABLE"
    if unavailable.exists():
        reason = unavailable.read_text().strip()
        print(f"\ntflite-runtime backend not tested: {reason}")
        # The issue allows CI to skip only where the wheel cannot be installed.
        require(False, reason)
    require((TFLITE_VENV / ".installed").exists(), f"{TFLITE_VENV} not built (run `make test`)")
    env = {**os.environ, "EDGETWIN_BACKEND": "tflite-runtime"}
    done = subprocess.run(
        [
            str(TFLITE_VENV / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/edge_agent/model/test_forecaster.py",
            "tests/edge_agent/model/test_bundle_rejections.py",
            "tests/edge_agent/model/test_backend_selected.py",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_an_interpreter_without_the_raw_binding_is_refused_by_name() -> None:
    """The forecaster keeps views of the tensors and calls the binding's Invoke; an
    interpreter wrapper without it is refused at load, naming the bundle."""
    from typing import Any, cast

    from edge_agent.model.inference.backend import raw_invoke
    from edgetwin_contracts.errors import ModelUnloadable

    class Wrapper:
        _interpreter = object()

    with pytest.raises(ModelUnloadable, match=r"bundle-x.*no raw Invoke"):
        raw_invoke(cast(Any, Wrapper()), "bundle-x")
