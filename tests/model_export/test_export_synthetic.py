"""The synthetic corpus: deterministic by seed, finite, varied in scale."""

from __future__ import annotations

import numpy as np
import pytest

from model_export.synthetic import generate_corpus


def test_same_seed_same_corpus() -> None:
    a = generate_corpus(seed=5, n_series=20, length=256)
    b = generate_corpus(seed=5, n_series=20, length=256)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_other_seed_other_corpus() -> None:
    a = generate_corpus(seed=5, n_series=5, length=256)
    b = generate_corpus(seed=6, n_series=5, length=256)
    assert not any(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_series_depend_only_on_seed_and_index() -> None:
    small = generate_corpus(seed=9, n_series=3, length=128)
    large = generate_corpus(seed=9, n_series=10, length=128)
    for x, y in zip(small, large[:3], strict=True):
        np.testing.assert_array_equal(x, y)


def test_series_are_finite_and_span_many_scales() -> None:
    corpus = generate_corpus(seed=1, n_series=200, length=512)
    assert all(s.shape == (512,) and np.all(np.isfinite(s)) for s in corpus)
    magnitudes = np.log10([max(abs(float(np.mean(s))), 1e-12) for s in corpus])
    assert magnitudes.max() - magnitudes.min() > 4  # from sub-unit readings to 1e4+


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="length"):
        generate_corpus(seed=1, n_series=1, length=4)
    with pytest.raises(ValueError, match="n_series"):
        generate_corpus(seed=1, n_series=-1)
