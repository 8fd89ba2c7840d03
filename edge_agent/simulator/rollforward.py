"""The simulator's own noise-free future under a control trajectory: the ground truth a
twin's what-if ("what if the load limit goes to 0.6?") is scored against.

``roll_forward(settings, state, setpoints)`` continues the pump from ``state`` (a
``Frame.state``) with the same physics and the same scheduled faults as ``iter_frames``,
but with every random term at its expectation: no sensor noise, no new kicks of the
load and ambient wanders (they decay from where they are), garbage/dropout/stuck/spike
ignored. Calibration drift is included in ``reported`` (it is what the sensor would say
without noise). The future of a run therefore differs from ``roll_forward``'s only by
noise; a model that predicts better than this has learnt the noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.faults import CHANNELS, FaultKind
from edge_agent.simulator.pump import (
    PumpState,
    SimulatorSettings,
    ambient_at,
    bearing_target,
    demand_at,
    fault_windows,
    machine_faults,
    ramp_limit,
    true_values,
)

__all__ = ["Trajectory", "roll_forward"]


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A noise-free future, one value per sample from ``state.index + 1`` on.

    truth: channel -> physical values; reported: channel -> what a noise-free sensor
    would print (truth plus calibration drift); load: the actual load (0..1); t: each
    sample's time offset from the run's start (s).
    """

    t: npt.NDArray[np.float64]
    load: npt.NDArray[np.float64]
    truth: dict[str, npt.NDArray[np.float64]]
    reported: dict[str, npt.NDArray[np.float64]]


def roll_forward(
    settings: SimulatorSettings,
    state: PumpState,
    setpoints: Sequence[float | None],
) -> Trajectory:
    """The pump's expected future from ``state``, one sample per element of ``setpoints``
    (the host's setpoint in effect at each future sample; None: no limit).

    The horizon is ``len(setpoints) / settings.rate_hz`` seconds. Raises ValueError for
    an empty control trajectory.
    """
    if len(setpoints) == 0:
        raise ValueError("roll_forward needs at least one future sample of setpoints")
    p = settings.params
    dt = 1.0 / settings.rate_hz
    windows = fault_windows(settings)
    drifts = [(f, first, end) for f, first, end in windows if f.kind is FaultKind.DRIFT]
    bearing_alpha = 1.0 - math.exp(-dt / p.bearing_tau_s)
    load_decay = math.exp(-dt / p.load_wander_tau_s)
    ambient_decay = math.exp(-dt / p.ambient_wander_tau_s)
    count = len(setpoints)
    t = np.empty(count)
    load = np.empty(count)
    truth = {channel: np.empty(count) for channel in CHANNELS}
    bearing, limit = state.bearing_c, state.load_limit
    load_wander, ambient_wander = state.load_wander, state.ambient_wander
    for k, setpoint in enumerate(setpoints):
        n = state.index + 1 + k
        t[k] = n * dt
        load_wander *= load_decay
        ambient_wander *= ambient_decay
        limit = ramp_limit(p, limit, setpoint, dt)
        load[k] = max(p.load_min, min(demand_at(p, t[k], load_wander), limit))
        ambient = ambient_at(p, t[k], ambient_wander)
        wear, overheat = machine_faults(windows, n, dt)
        target = bearing_target(p, ambient, float(load[k]), wear, overheat)
        bearing += (target - bearing) * bearing_alpha
        for channel, value in (
            true_values(p, bearing, ambient, float(load[k]), wear).as_dict().items()
        ):
            truth[channel][k] = value
    reported = {channel: values.copy() for channel, values in truth.items()}
    index = state.index + 1 + np.arange(count)
    for fault, first, end in drifts:
        assert fault.channel is not None
        drifted = np.clip(np.minimum(index, end if end is not None else index) - first, 0, None)
        reported[fault.channel] += (fault.rate or 0.0) * drifted * dt / 60.0
    return Trajectory(t, load, truth, reported)
