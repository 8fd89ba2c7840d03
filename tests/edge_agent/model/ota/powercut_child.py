"""Child for the power-cut tests: installs one release and feeds samples until it is
installed, SIGKILLing itself right after the named step (``none``: never).

python -m tests.edge_agent.model.ota.powercut_child MODELS_DIR KEY_FILE URL RELEASE_JSON STEP
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.config import parse_config
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.ota.manager import OtaManager
from edge_agent.model.selection import load_model
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.reading import Reading
from edgetwin_contracts.batch import ModelRelease, ModelUpdateState
from edgetwin_contracts.signing import load_public_key

from .conftest import Sink, sine
from .releases import TOKEN


def main() -> int:
    models_dir, key_file, url, release_json, step = sys.argv[1:6]
    release = ModelRelease.model_validate_json(release_json)
    key = Path(key_file)
    models = ModelsDir(Path(models_dir))

    def on_step(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    config = parse_config("")
    running = load_model(config.model, models, key)
    engine = AlarmEngine([], running.forecaster.horizons, sink=lambda e: None, actions={})
    pipeline = Pipeline(config, running.forecaster, engine, Sink())
    manager = OtaManager(
        OtaConfig(guard_samples=20, backoff={"initial_s": 0.05, "max_s": 0.05}),
        models,
        running=running,
        pipeline=pipeline,
        engine=engine,
        key=load_public_key(key),
        key_file=key,
        downloader=Downloader(url, TOKEN, 10.0),
        on_step=on_step,
    )
    manager.recover()

    async def scenario() -> None:
        for i in range(40):
            pipeline.process(Reading(1e9 + i, "a", sine(i)))
        await manager.update(release)
        i = 40
        while manager.report().state is ModelUpdateState.GUARDING and i < 20_000:
            pipeline.process(Reading(1e9 + i, "a", sine(i)))
            i += 1
            await asyncio.sleep(0.001)
        await manager.aclose()

    asyncio.run(scenario())
    print(manager.report().state.value, manager.running_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
