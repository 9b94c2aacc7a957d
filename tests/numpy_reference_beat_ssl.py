"""Independent float64 NumPy reference for the soft-target contrastive loss (Beat-SSL).

Written from the formula in acl_jax/objectives/soft_contrast.py's docstring with explicit
loops over anchors and candidates, sharing no code with the JAX implementation.
"""

import numpy as np


def _unit(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)


def soft_nt_xent(z1, z2, f1, f2, valid, has, temperature, gamma):
    """Returns (loss, acc, pos_target) for one device holding the whole batch."""
    z1, z2, f1, f2 = (np.asarray(a, np.float64) for a in (z1, z2, f1, f2))
    valid = np.asarray(valid, bool)
    has = np.asarray(has, bool) & valid
    n = z1.shape[0]
    rows_z = np.concatenate([_unit(z1), _unit(z2)])
    rows_f = np.concatenate([f1, f2])
    rows_valid = np.concatenate([valid, valid])
    rows_has = np.concatenate([has, has])
    mu = rows_f[rows_has].mean(axis=0) if rows_has.any() else np.zeros(f1.shape[1])
    rows_v = _unit(rows_f - mu)

    losses, correct, pos_mass = [], [], []
    for k in range(2 * n):
        if not rows_valid[k]:
            continue
        pos = (k + n) % (2 * n)
        cands = [c for c in range(2 * n) if c != k and rows_valid[c]]
        weights = []
        for c in cands:
            if c == pos:
                weights.append(1.0)
            elif rows_has[k] and rows_has[c]:
                s = min(max(float(rows_v[k] @ rows_v[c]), 0.0), 1.0)
                weights.append(s**gamma)
            else:
                weights.append(0.0)
        q = np.array(weights) / np.sum(weights)
        logits = np.array([rows_z[k] @ rows_z[c] / temperature for c in cands])
        log_softmax = logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()
        losses.append(-np.sum(q * log_softmax))
        correct.append(cands[int(np.argmax(logits))] == pos)
        pos_mass.append(q[cands.index(pos)])
    return float(np.mean(losses)), float(np.mean(correct)), float(np.mean(pos_mass))
