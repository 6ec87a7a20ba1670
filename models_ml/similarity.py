"""Short sketches of crop embeddings, for finding similar crops fast.

The Label page groups crops that look alike so one click labels them all. Comparing a crop
with 100k others on the embedder's full vectors (1280 floats each) reads half a gigabyte and
takes ~200 ms on two cores; a fixed Gaussian random projection to :data:`SKETCH_DIM` floats
keeps cosine similarity (Johnson-Lindenstrauss: the estimate's spread is about
(1 - cos^2) / sqrt(SKETCH_DIM), so ~0.03 at 0.8 and ~0.06 on the sample's whole range) and
makes the scan ~15x cheaper. The page groups and thresholds on the estimate; the person looking
at the crops (and unticking the odd one) is the check.

The projection is a pure function of the embedding size (seeded), so every process, run and
machine computes the same sketch for the same embedding.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["SKETCH_DIM", "sketch", "sketch_one"]

SKETCH_DIM = 128
_SEED = 20261202


@cache
def _projection(dim: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(_SEED + dim)
    out: npt.NDArray[np.float32] = (
        rng.standard_normal((dim, SKETCH_DIM)) / np.sqrt(SKETCH_DIM)
    ).astype(np.float32)
    return out


def sketch(embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """(n, d) embeddings -> (n, SKETCH_DIM) L2-normalised sketches (a zero row stays zero)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {x.shape}")
    y = x @ _projection(x.shape[1])
    norms = np.linalg.norm(y, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(y, norms, out=np.zeros_like(y), where=norms > 0)
    return out


def sketch_one(embedding: npt.ArrayLike) -> list[float]:
    """One embedding's sketch, as the list ``raw.crop_embeddings.sketch`` stores."""
    return [float(v) for v in sketch(np.asarray(embedding, np.float32)[None, :])[0]]
