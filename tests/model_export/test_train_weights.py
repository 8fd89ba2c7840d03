"""Sample weights in training: the loss (and early stopping) follow them."""

from __future__ import annotations

import numpy as np

from model_export.train import TrainSettings, train


def test_weighted_windows_pull_the_fit_toward_them() -> None:
    # The same inputs with two contradicting targets: +1 and -1. Equal weights fit the
    # middle; weighting the +1 copies ten times as much moves the fit toward +1.
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((400, 8))
    z_in = np.concatenate([inputs, inputs])
    z_target = np.concatenate([np.ones((400, 1)), -np.ones((400, 1))])
    order = rng.permutation(len(z_in))
    z_in, z_target = z_in[order], z_target[order]
    heavy = np.where(z_target[:, 0] > 0, 10.0, 1.0)
    settings = TrainSettings(
        hidden=(8,), epochs=40, validation_fraction=0.0, loss="mse", verbose=0, seed=1
    )

    plain = train(z_in, z_target, settings).model
    weighted = train(z_in, z_target, settings, sample_weights=heavy).model

    probe = inputs[:50].astype(np.float32)
    plain_mean = float(np.mean(plain.predict(probe, verbose=0)))
    weighted_mean = float(np.mean(weighted.predict(probe, verbose=0)))
    assert abs(plain_mean) < 0.3
    assert weighted_mean > 0.5  # the mse optimum is (10 - 1) / 11 = 0.82
