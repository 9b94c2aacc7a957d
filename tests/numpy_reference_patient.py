"""Loop-based float64 NumPy references for the patient-aware objectives (tests only), written
from the formulas in acl_jax.objectives.multi_positive and acl_jax.objectives.cmsc.

Each anchor is handled alone with explicit candidate and positive lists, sharing no indexing
tricks with the vectorized JAX code they check.
"""

from __future__ import annotations

import math

import numpy as np


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


def multi_positive_nt_xent(z1, z2, ids, temperature):
    """z1, z2: (N, P); ids: (N,). Returns (loss, top-1 accuracy, mean positives per anchor)."""
    n = len(z1)
    # Items are (example, view) pairs; an item's id is its example's id.
    items = [((i, v), _unit(z[i])) for v, z in ((0, z1), (1, z2)) for i in range(n)]
    losses, hits, counts = [], [], []
    for key, anchor in items:
        others = [(k, c) for k, c in items if k != key]
        sims = {k: float(anchor @ c) / temperature for k, c in others}
        top = max(sims.values())
        log_denominator = top + math.log(sum(math.exp(s - top) for s in sims.values()))
        positives = [k for k, _ in others if ids[k[0]] == ids[key[0]]]
        losses.append(-np.mean([sims[k] - log_denominator for k in positives]))
        best = max(sims, key=sims.get)
        hits.append(ids[best[0]] == ids[key[0]])
        counts.append(len(positives))
    return float(np.mean(losses)), float(np.mean(hits)), float(np.mean(counts))


def split_halves(x, rpeaks):
    """One example: x (12, W), rpeaks (K,) padded with -1 -> ((x1, r1), (x2, r2)) with each
    half's peaks relative to its own start, ascending, padded with -1 to K."""
    w, k = x.shape[1], len(rpeaks)
    h = w // 2
    peaks = [int(p) for p in rpeaks if p >= 0]
    first = [p for p in peaks if p < h]
    second = [p - h for p in peaks if p >= h]

    def pad(ps):
        return np.array(sorted(ps) + [-1] * (k - len(ps)), np.int32)

    return (x[:, :h], pad(first)), (x[:, h:], pad(second))
