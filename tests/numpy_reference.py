"""Loop-based float64 NumPy references for the contrastive losses, written from the formulas
in the docstrings of acl_jax.objectives.ntxent and acl_jax.objectives.acl_ecg (used by tests only).

Each anchor is handled one at a time with explicit candidate lists, so that these references
share no indexing tricks with the vectorized JAX code they check.
"""

from __future__ import annotations

import math

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


def _anchor_loss(anchor, positive, candidates, temperature) -> tuple[float, bool]:
    """-log softmax of the positive among `candidates` (which include the positive)."""
    sims = [float(anchor @ c) / temperature for c in candidates]
    top = max(sims)
    log_denominator = top + math.log(sum(math.exp(s - top) for s in sims))
    pos = float(anchor @ positive) / temperature
    # Correct when no candidate beats the positive (the positive is among the candidates).
    return log_denominator - pos, pos >= top


def nt_xent(z1, z2, temperature):
    """SimCLR NT-Xent over 2N anchors. z1, z2: (N, P). Returns (loss, top-1 accuracy)."""
    n = len(z1)
    # Items are (example, view) pairs.
    emb = {(i, v): _unit(z[i]) for v, z in ((0, z1), (1, z2)) for i in range(n)}
    losses, hits = [], []
    for (i, v), a in emb.items():
        cands = [c for key, c in emb.items() if key != (i, v)]
        loss, hit = _anchor_loss(a, emb[(i, 1 - v)], cands, temperature)
        losses.append(loss)
        hits.append(hit)
    return float(np.mean(losses)), float(np.mean(hits))


def intra_region(r1, r2, mask, temperature):
    """Per-region NT-Xent over valid (record, view) items, averaged over regions that have any.

    r1, r2: (N, R, P); mask: (N, R) {0, 1}. Returns (loss, pooled top-1 accuracy).
    """
    n, num_regions, _ = r1.shape
    region_means, hits = [], []
    for r in range(num_regions):
        emb = {
            (i, v): _unit(z[i, r]) for v, z in ((0, r1), (1, r2)) for i in range(n) if mask[i, r]
        }
        losses = []
        for (i, v), a in emb.items():
            cands = [c for key, c in emb.items() if key != (i, v)]
            loss, hit = _anchor_loss(a, emb[(i, 1 - v)], cands, temperature)
            losses.append(loss)
            hits.append(hit)
        if losses:
            region_means.append(np.mean(losses))
    loss = float(np.mean(region_means)) if region_means else 0.0
    return loss, float(np.mean(hits)) if hits else 0.0


def inter_region(r1, r2, mask, temperature):
    """InfoNCE against the other present regions of the same record (both views).

    r1, r2: (N, R, P); mask: (N, R) {0, 1}. Returns (loss, top-1 accuracy), means over valid
    anchors.
    """
    n, num_regions, _ = r1.shape
    losses, hits = [], []
    for i in range(n):
        emb = {
            (r, v): _unit(z[i, r])
            for v, z in ((0, r1), (1, r2))
            for r in range(num_regions)
            if mask[i, r]
        }
        for (r, v), a in emb.items():
            cands = [c for key, c in emb.items() if key != (r, v)]
            loss, hit = _anchor_loss(a, emb[(r, 1 - v)], cands, temperature)
            losses.append(loss)
            hits.append(hit)
    if not losses:
        return 0.0, 0.0
    return float(np.mean(losses)), float(np.mean(hits))


def inter_alignment(r1, r2, mask, temperature):
    """ACL-ECG's region_objective "inter_alignment": positives are the anchor record's OTHER
    present regions in the OTHER view, candidates those plus every present region of every
    other record (both views); "L_out" multi-positive average, then the mean over valid anchors
    that have a positive. r1, r2: (N, R, P); mask: (N, R). Returns (loss, top-1 accuracy)."""
    n, num_regions, _ = r1.shape
    emb = {
        (i, r, v): _unit(z[i, r])
        for v, z in ((0, r1), (1, r2))
        for i in range(n)
        for r in range(num_regions)
        if mask[i, r]
    }
    losses, hits = [], []
    for (i, r, v), a in emb.items():
        positives = [c for (j, q, w), c in emb.items() if j == i and q != r and w != v]
        if not positives:
            continue
        cands = positives + [c for (j, _, _), c in emb.items() if j != i]
        sims = [float(a @ c) / temperature for c in cands]
        top = max(sims)
        log_denominator = top + math.log(sum(math.exp(s - top) for s in sims))
        pos = sims[: len(positives)]
        losses.append(np.mean([log_denominator - s for s in pos]))
        hits.append(max(pos) >= top)
    if not losses:
        return 0.0, 0.0
    return float(np.mean(losses)), float(np.mean(hits))


def acl_ecg(g1, g2, r1, r2, mask, temperature, w_global, w_intra, w_inter):
    """Weighted ACL-ECG total and its terms as a dict (loss_global, loss_intra, loss_inter)."""
    lg, _ = nt_xent(g1, g2, temperature)
    li, _ = intra_region(r1, r2, mask, temperature)
    le, _ = inter_region(r1, r2, mask, temperature)
    total = w_global * lg + w_intra * li + w_inter * le
    return total, {"loss_global": lg, "loss_intra": li, "loss_inter": le}
