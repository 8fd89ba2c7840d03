"""Which TFLite interpreter to use: ai-edge-litert (default) or legacy tflite-runtime.

Selected by name (``"auto"``, ``"ai-edge-litert"``, ``"tflite-runtime"``); ``"auto"``
can be overridden by the ``EDGETWIN_BACKEND`` environment variable. Neither backend
imports TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from edge_agent.errors import BackendUnavailable
from edgetwin_contracts.errors import ModelUnloadable


class Backend(StrEnum):
    LITERT = "ai-edge-litert"
    TFLITE_RUNTIME = "tflite-runtime"


_MODULES = {
    Backend.LITERT: "ai_edge_litert.interpreter",
    Backend.TFLITE_RUNTIME: "tflite_runtime.interpreter",
}
_AUTO_ORDER = (Backend.LITERT, Backend.TFLITE_RUNTIME)


class Interpreter(Protocol):
    """The part of the TFLite Python interpreter API both backends share."""

    def allocate_tensors(self) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, tensor_index: int, value: Any) -> None: ...
    def get_tensor(self, tensor_index: int) -> Any: ...
    def tensor(self, tensor_index: int) -> Callable[[], Any]: ...
    def invoke(self) -> None: ...


class InterpreterFactory(Protocol):
    def __call__(self, *, model_content: bytes, num_threads: int) -> Interpreter: ...


def resolve(name: str | Backend = "auto") -> tuple[Backend, InterpreterFactory]:
    """Return the backend and its Interpreter class.

    Raises:
        BackendUnavailable: the named backend (or, for "auto", every backend) failed to
            import; the message says why for each.
        ValueError: unknown backend name.
    """
    if str(name) == "auto":
        name = os.environ.get("EDGETWIN_BACKEND", "auto")
    candidates: tuple[Backend, ...]
    if str(name) == "auto":
        candidates = _AUTO_ORDER
    else:
        try:
            candidates = (Backend(str(name)),)
        except ValueError:
            valid = ", ".join(["auto", *(b.value for b in Backend)])
            raise ValueError(
                f"unknown inference backend {name!r}; expected one of {valid}"
            ) from None
    failures = []
    for backend in candidates:
        try:
            module = importlib.import_module(_MODULES[backend])
        except (
            Exception
        ) as exc:  # an import can fail with ImportError, AttributeError (numpy ABI)...
            failures.append(f"{backend.value}: {type(exc).__name__}: {exc}")
            continue
        factory: InterpreterFactory = module.Interpreter
        return backend, factory
    raise BackendUnavailable(
        "no TFLite interpreter could be imported ("
        + "; ".join(failures)
        + "). Install ai-edge-litert, or edgetwin[tflite] on Python <= 3.11."
    )


def raw_invoke(interpreter: Interpreter, source: str) -> Callable[[], None]:
    """The binding's own ``Invoke``, for a caller that holds views of the tensors.

    The Python wrapper's ``invoke()`` refuses to run while any numpy view of a tensor
    exists, because ``allocate_tensors()`` or a resize could move the buffers under it.
    A caller that never re-allocates after taking its views (the forecaster) can keep
    them and call the binding directly: both backends ship the same wrapper, whose
    binding (``_interpreter``) has ``Invoke``. It releases the GIL as ``invoke()`` does.

    Raises:
        ModelUnloadable: this interpreter has no such binding (an unknown wrapper).
    """
    binding = getattr(interpreter, "_interpreter", None)
    invoke = getattr(binding, "Invoke", None)
    if not callable(invoke):
        raise ModelUnloadable(
            source,
            f"the {type(interpreter).__module__} interpreter has no raw Invoke binding; "
            "edge_agent supports the ai-edge-litert and tflite-runtime wrappers",
        )
    return invoke  # type: ignore[no-any-return]
