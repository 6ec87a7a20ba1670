"""models_ml/similarity.py: the sketch the Label page groups crops by estimates the cosine
similarity of the full embeddings, is the same in every process, and ranks neighbours as the
full vectors do."""

from __future__ import annotations

import numpy as np
import pytest

from models_ml.similarity import SKETCH_DIM, sketch, sketch_one


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sketch_estimates_cosine_within_the_jl_bound() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 1280))
    x = _unit(centres[rng.integers(0, 20, 400)] + rng.normal(scale=0.5, size=(400, 1280)))
    exact = x @ x.T
    est = sketch(x) @ sketch(x).T
    near = exact > 0.7  # the pairs the page groups
    err = np.abs(est - exact)[near & ~np.eye(400, dtype=bool)]
    assert err.size > 100
    assert float(np.quantile(err, 0.95)) < 0.08  # (1 - cos^2) / sqrt(128) ~ 0.05 at 0.7
    # the neighbours it ranks first are the exact ones: 16 nearest by sketch vs exact
    top_exact = np.argsort(-exact[0])[1:17]
    top_sketch = np.argsort(-est[0])[1:17]
    assert len(set(top_exact) & set(top_sketch)) >= 12


def test_sketch_is_fixed_unit_and_shaped() -> None:
    x = _unit(np.random.default_rng(2).normal(size=(3, 1280)))
    a, b = sketch(x), sketch(x.copy())
    assert a.shape == (3, SKETCH_DIM) and a.dtype == np.float32
    assert np.array_equal(a, b)  # a pure function of the embedding: every process agrees
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert sketch_one(x[0]) == pytest.approx(list(a[0]), abs=1e-6)
    assert not sketch(np.zeros((1, 1280))).any()  # a zero vector stays zero (no NaN)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        sketch(np.zeros(1280))
