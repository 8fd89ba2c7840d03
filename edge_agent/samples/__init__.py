"""A recorded sample the agent ships for `edge-agent replay` smoke runs on a device."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent
PUMP_CSV = SAMPLES / "pump.csv"
"""30 min of a simulated pump at 1 Hz (seed 7): vibration glitch at 600 s, overheat from 900 s."""
REPLAY_CONFIG = SAMPLES / "replay.toml"
