"""Training the twin on its own roll-outs.

A step model trained one step ahead on true windows never sees its own predictions in
its input, and a what-if feeds them back for an hour. After the one-step fit, this
fits the same network through ``steps`` periods rolled forward exactly as the device
rolls it (the window shifted by the predicted row, the planned controls appended),
the loss on every step's levels in z units. TensorFlow only; called by ``build_twin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin_contracts.manifest import TwinChannel
from model_export.errors import TrainingFailed
from model_export.train import quiet_tensorflow

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    steps: int = 12
    """Periods rolled forward per sample (about two of the bearing's time constants; 30
    was tried and was worse at 10, 30 and 60 minutes alike)."""
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 2e-4
    samples_per_series: int = 60
    seed: int = 7


def rollout_samples(
    series: FloatArray, chans: list[TwinChannel], window: int, n_controls: int, s: RolloutSettings
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(start windows (N, window, channels) z, controls (N, steps, controls) z, target
    output levels (N, steps, outputs) z), from random starts in each series."""
    center = np.array([c.center for c in chans])
    scale = np.array([c.scale for c in chans])
    z = (series - center) / scale
    n_out = len(chans) - n_controls
    rng = np.random.default_rng(s.seed)
    starts = []
    for i in range(len(z)):
        for t0 in rng.integers(window, z.shape[1] - s.steps, size=s.samples_per_series):
            starts.append((i, int(t0)))
    windows = np.stack([z[i, t0 - window : t0] for i, t0 in starts])
    controls = np.stack([z[i, t0 : t0 + s.steps, n_out:] for i, t0 in starts])
    targets = np.stack([z[i, t0 : t0 + s.steps, :n_out] for i, t0 in starts])
    return windows, controls, targets


def fit_rollouts(
    model: Any,
    series: FloatArray,
    chans: list[TwinChannel],
    window: int,
    n_controls: int,
    settings: RolloutSettings | None = None,
) -> float:
    """Fit ``model`` (in place) on roll-outs; returns the last epoch's mean loss.

    Raises TrainingFailed when the loss becomes NaN or inf."""
    s = settings or RolloutSettings()
    quiet_tensorflow()
    import tensorflow as tf

    n_out = len(chans) - n_controls
    gain = tf.constant([(c.step_scale or 1.0) / c.scale for c in chans[:n_out]], dtype=tf.float32)
    windows, controls, targets = rollout_samples(series, chans, window, n_controls, s)
    data = (
        tf.data.Dataset.from_tensor_slices(
            (windows.astype(np.float32), controls.astype(np.float32), targets.astype(np.float32))
        )
        .shuffle(len(windows), seed=s.seed)
        .batch(s.batch_size)
    )
    optimizer = tf.keras.optimizers.Adam(s.learning_rate)

    def one_batch(w: Any, c: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = 0.0
            for k in range(s.steps):
                flat = tf.reshape(w, (-1, window * len(chans)))
                delta = model(tf.concat([flat, c[:, k]], axis=1), training=True)
                new_out = w[:, -1, :n_out] + delta * gain
                loss += tf.reduce_mean(tf.square(new_out - y[:, k]))
                row = tf.concat([new_out, c[:, k]], axis=1)[:, None, :]
                w = tf.concat([w[:, 1:], row], axis=1)
            loss /= s.steps
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    train_step = tf.function(one_batch)  # traced once: the roll-out loop becomes a graph
    last = float("nan")
    for _ in range(s.epochs):
        losses = [float(train_step(w, c, y)) for w, c, y in data]
        last = float(np.mean(losses))
        if not np.isfinite(last):
            raise TrainingFailed("the roll-out loss became NaN or inf; lower its learning rate")
    return last
