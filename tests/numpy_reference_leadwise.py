"""Loop-based float64 NumPy references for the lead-wise losses DLC and LCD, written from the
formulas in the docstrings of acl_jax.objectives.dlc and acl_jax.objectives.lcd (tests only).

Anchors, slots and lead pairs are visited one at a time with explicit candidate lists, so these
references share no indexing or masking tricks with the vectorized JAX code they check.
"""

from __future__ import annotations

import math

import numpy as np


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


def _cos(a, b) -> float:
    return float(_unit(a) @ _unit(b))


def _anchor_loss(anchor, positive, candidates, temperature) -> tuple[float, bool]:
    """-log softmax of the positive among `candidates` (which include the positive)."""
    sims = [float(anchor @ c) / temperature for c in candidates]
    top = max(sims)
    log_denominator = top + math.log(sum(math.exp(s - top) for s in sims))
    pos = float(anchor @ positive) / temperature
    return log_denominator - pos, pos >= top


def dlc_intra(z1, z2, valid, temperature):
    """Per-lead NT-Xent over valid (record, view) items, pooled over all valid anchors.

    z1, z2: (N, L, P); valid: (N, L) {0, 1}. Returns (loss, top-1 accuracy).
    """
    n, num_leads, _ = z1.shape
    losses, hits = [], []
    for lead in range(num_leads):
        items = {
            (i, v): _unit(z[i, lead])
            for v, z in ((0, z1), (1, z2))
            for i in range(n)
            if valid[i, lead]
        }
        for (i, v), a in items.items():
            cands = [c for key, c in items.items() if key != (i, v)]
            loss, hit = _anchor_loss(a, items[(i, 1 - v)], cands, temperature)
            losses.append(loss)
            hits.append(hit)
    if not losses:
        return 0.0, 0.0
    return float(np.mean(losses)), float(np.mean(hits))


def dlc_inter(z1, z2, valid, temperature):
    """InfoNCE against the other valid leads of the same record (both views), pooled mean.

    z1, z2: (N, L, P); valid: (N, L) {0, 1}. Returns (loss, top-1 accuracy).
    """
    n, num_leads, _ = z1.shape
    losses, hits = [], []
    for i in range(n):
        items = {
            (lead, v): _unit(z[i, lead])
            for v, z in ((0, z1), (1, z2))
            for lead in range(num_leads)
            if valid[i, lead]
        }
        for (lead, v), a in items.items():
            cands = [c for key, c in items.items() if key != (lead, v)]
            loss, hit = _anchor_loss(a, items[(lead, 1 - v)], cands, temperature)
            losses.append(loss)
            hits.append(hit)
    if not losses:
        return 0.0, 0.0
    return float(np.mean(losses)), float(np.mean(hits))


def dlc(z1, z2, valid, temperature, w_intra, w_inter):
    """Weighted DLC total and its terms {loss_intra, acc_intra, loss_inter, acc_inter}."""
    li, ai = dlc_intra(z1, z2, valid, temperature)
    le, ae = dlc_inter(z1, z2, valid, temperature)
    terms = {"loss_intra": li, "acc_intra": ai, "loss_inter": le, "acc_inter": ae}
    return w_intra * li + w_inter * le, terms


def lcd_corr(p1, p2, t1, t2, valid):
    """Symmetrized BYOL loss between predictions and the other view's target, per valid slot."""
    n, num_leads, _ = p1.shape
    values = [
        ((2 - 2 * _cos(p1[i, lead], t2[i, lead])) + (2 - 2 * _cos(p2[i, lead], t1[i, lead]))) / 2
        for i in range(n)
        for lead in range(num_leads)
        if valid[i, lead]
    ]
    return float(np.mean(values)) if values else 0.0


def lcd_dec_view(y, valid, eps):
    """Mean squared off-diagonal cross-lead correlation of one view's globally standardized y."""
    n, num_leads, dim = y.shape
    slots = [(i, lead) for i in range(n) for lead in range(num_leads) if valid[i, lead]]
    if not slots:
        return 0.0
    rows = np.array([y[i, lead] for i, lead in slots], dtype=np.float64)  # (|V|, P)
    mean = rows.sum(axis=0) / len(rows)
    var = ((rows - mean) ** 2).sum(axis=0) / len(rows)
    zn = {s: (np.asarray(y[s], np.float64) - mean) / np.sqrt(var + eps) for s in slots}
    squares = []
    for i in range(n):
        for a in range(num_leads):
            for b in range(num_leads):
                if a != b and valid[i, a] and valid[i, b]:
                    squares.append(_cos(zn[(i, a)], zn[(i, b)]) ** 2)
    return float(np.mean(squares)) if squares else 0.0


def lcd(p1, p2, t1, t2, y1, y2, valid, lambda_dec, eps):
    """LCD total and its terms {loss_corr, loss_dec}."""
    corr = lcd_corr(p1, p2, t1, t2, valid)
    dec = (lcd_dec_view(y1, valid, eps) + lcd_dec_view(y2, valid, eps)) / 2
    return corr + lambda_dec * dec, {"loss_corr": corr, "loss_dec": dec}


def momentum(step, total_steps, tau_base):
    """BYOL's cosine EMA momentum after update `step` (1-based) of `total_steps`."""
    k = min(max(step - 1, 0), total_steps)
    return 1 - (1 - tau_base) * (math.cos(math.pi * k / total_steps) + 1) / 2
