"""Load a bundle in a child process first, so a model that crashes the interpreter
(a segfault, an abort, a hang) takes down only the child, never the agent.

Child: ``python -m edge_agent.model.ota.selftest BUNDLE_DIR KEY_PEM [BACKEND]`` runs
``load_bundle`` (signature and hash again, interpreter, tensors, golden vectors) and
prints one JSON line: {"ok": true, "version": ...} (exit 0) or {"ok": false,
"reason": ...} (exit 2).
Parent: ``run_self_test`` maps a signal, a timeout, a non-zero exit to SelfTestFailed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent.model.ota.errors import SelfTestFailed

CHILD_COMMAND = (sys.executable, "-m", "edge_agent.model.ota.selftest")
_OUTPUT_MAX = 2000


def run_self_test(
    bundle: Path,
    key_file: Path,
    backend: str,
    timeout_s: float,
    command: Sequence[str] = CHILD_COMMAND,
) -> str:
    """Run the child on ``bundle``; return the model version it loaded.

    Raises SelfTestFailed (crash by signal, timeout, refusal, unreadable answer).
    """
    argv = [*command, str(bundle), str(key_file), backend]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise SelfTestFailed(f"loading the model took longer than {timeout_s:g} s") from None
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
    return str(answer.get("version"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3):
        print(json.dumps({"ok": False, "reason": "usage: BUNDLE_DIR KEY_PEM [BACKEND]"}))
        return 2
    # Imported here: the parent imports this module for run_self_test only.
    from edge_agent.errors import BackendUnavailable
    from edge_agent.model.bundle import load_bundle
    from edgetwin_contracts.errors import BundleRejected, KeyInvalid
    from edgetwin_contracts.signing import load_public_key

    backend = args[2] if len(args) == 3 else "auto"
    try:
        loaded = load_bundle(Path(args[0]), load_public_key(Path(args[1])), backend=backend)
    except (BundleRejected, KeyInvalid, BackendUnavailable) as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}))
        return 2
    print(json.dumps({"ok": True, "version": loaded.manifest.model.version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
