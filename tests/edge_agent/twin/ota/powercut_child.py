"""Child for the twin power-cut tests: installs one twin release on the simulated pump
and guards it, SIGKILLing itself right after the named step (``none``: never); prints
the final update report.

python -m tests.edge_agent.twin.ota.powercut_child ROOT KEY_FILE URL RELEASE_JSON STEP
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from edgetwin_contracts.batch import ModelRelease

from .rig import WARM_S, build_rig, settle


def main() -> int:
    root, key_file, url, release_json, step = sys.argv[1:6]
    release = ModelRelease.model_validate_json(release_json)

    def on_step(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    # A store of its own: the pump's history is rebuilt from sample 0 each run.
    rig = build_rig(
        Path(root), Path(key_file), url, on_step=on_step, store_name=f"store-{os.getpid()}.db"
    )
    rig.pump.run_until(WARM_S)

    async def scenario() -> None:
        await rig.manager.update(release)
        await settle(rig)
        await rig.manager.aclose()

    asyncio.run(scenario())
    print(rig.manager.report().model_dump_json())
    rig.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
