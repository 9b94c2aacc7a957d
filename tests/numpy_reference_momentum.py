"""Loop-based float64 NumPy references for BYOL, SimSiam and MoCo v3 (tests only), written from
the formulas in the docstrings of acl_jax.objectives.byol, .simsiam, .moco and .ema.

One example (one query) at a time with explicit candidate lists, sharing no vectorized
indexing with the JAX code they check.
"""

from __future__ import annotations

import math

import numpy as np


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


def _cos(a, b) -> float:
    return float(_unit(a) @ _unit(b))


def byol(p1, p2, t1, t2) -> tuple[float, float]:
    """Mean over examples of ||p1/|p1| - t2/|t2|||^2 + ||p2/|p2| - t1/|t1|||^2, and mean cos."""
    losses, coss = [], []
    for i in range(len(p1)):
        d12 = np.sum((_unit(p1[i]) - _unit(t2[i])) ** 2)
        d21 = np.sum((_unit(p2[i]) - _unit(t1[i])) ** 2)
        losses.append(d12 + d21)
        coss.extend([_cos(p1[i], t2[i]), _cos(p2[i], t1[i])])
    return float(np.mean(losses)), float(np.mean(coss))


def simsiam(p1, p2, z1, z2) -> float:
    """Mean over examples of -cos(p1, z2) / 2 - cos(p2, z1) / 2."""
    return float(
        np.mean([-_cos(p1[i], z2[i]) / 2 - _cos(p2[i], z1[i]) / 2 for i in range(len(p1))])
    )


def _ctr(query, positive, candidates, temperature) -> tuple[float, bool]:
    sims = [float(_unit(query) @ _unit(c)) / temperature for c in candidates]
    top = max(sims)
    log_den = top + math.log(sum(math.exp(s - top) for s in sims))
    pos = float(_unit(query) @ _unit(positive)) / temperature
    return log_den - pos, pos >= top


def moco(q1, q2, k1, k2, temperature, queue=None, queue_len=0) -> tuple[float, float]:
    """2 tau [mean ctr(q1, k2) + mean ctr(q2, k1)] with candidates = other-view keys of the batch
    plus, with a queue (2, Q, P), the first queue_len entries of that other view's queue.
    Returns (loss, top-1 accuracy over the 2N queries)."""
    n = len(q1)
    total, hits = 0.0, []
    for queries, keys, other in ((q1, k2, 1), (q2, k1, 0)):
        extra = [] if queue is None else list(queue[other][:queue_len])
        cands = list(keys) + extra
        for i in range(n):
            loss, hit = _ctr(queries[i], keys[i], cands, temperature)
            total += loss / n
            hits.append(hit)
    return 2 * temperature * total, float(np.mean(hits))


def enqueue(queue, queue_len, k1, k2) -> tuple[np.ndarray, int]:
    """FIFO, newest first: each view's unit keys go to the front; the queue keeps its size."""
    size = queue.shape[1]
    out = np.array(queue, dtype=np.float64)
    for view, keys in ((0, k1), (1, k2)):
        items = [_unit(k) for k in keys] + list(out[view])
        out[view] = np.array(items[:size])
    return out, min(queue_len + len(k1), size)


def cosine_momentum(step: int, total_steps: int, base: float) -> float:
    """tau after 1-based update `step`: 1 - (1 - base) (cos(pi k / K) + 1) / 2, k = step - 1."""
    k = min(max(step - 1, 0), total_steps)
    return 1 - (1 - base) * (math.cos(math.pi * k / total_steps) + 1) / 2
