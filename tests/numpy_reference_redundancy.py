"""Loop-based float64 NumPy references for Barlow Twins and VICReg, written from the formulas in
the docstrings of acl_jax.objectives.barlow_twins and acl_jax.objectives.vicreg (tests only).

Every matrix entry is an explicit sum over examples, so these share no vectorized tricks (no
matmuls, no masks) with the JAX code they check.
"""

from __future__ import annotations

import math

import numpy as np


def _columns(z) -> list[list[float]]:
    """(N, P) -> P lists of N float64 values (one per dimension)."""
    z = np.asarray(z, dtype=np.float64)
    return [[float(z[b, j]) for b in range(z.shape[0])] for j in range(z.shape[1])]


def _mean(xs):
    return sum(xs) / len(xs)


def _standardized(col, eps):
    m = _mean(col)
    var = sum((x - m) ** 2 for x in col) / len(col)  # biased, as BatchNorm
    return [(x - m) / math.sqrt(var + eps) for x in col]


def barlow_twins(z1, z2, lambd, eps=1e-5):
    """Returns (loss, {"loss_on_diag", "loss_off_diag", "corr_diag"}). z1, z2: (N, P)."""
    a = [_standardized(c, eps) for c in _columns(z1)]
    b = [_standardized(c, eps) for c in _columns(z2)]
    n, p = len(a[0]), len(a)
    corr = [[sum(a[i][k] * b[j][k] for k in range(n)) / n for j in range(p)] for i in range(p)]
    on = sum((1.0 - corr[i][i]) ** 2 for i in range(p))
    off = sum(corr[i][j] ** 2 for i in range(p) for j in range(p) if i != j)
    terms = {
        "loss_on_diag": on,
        "loss_off_diag": off,
        "corr_diag": sum(corr[i][i] for i in range(p)) / p,
    }
    return on + lambd * off, terms


def _vicreg_view(z, eps):
    """(v(Z), c(Z), mean std) of one view, unbiased (N - 1) statistics."""
    cols = _columns(z)
    n, d = len(cols[0]), len(cols)
    centered = [[x - _mean(c) for x in c] for c in cols]
    cov = [
        [sum(centered[i][k] * centered[j][k] for k in range(n)) / (n - 1) for j in range(d)]
        for i in range(d)
    ]
    stds = [math.sqrt(cov[j][j] + eps) for j in range(d)]
    v = sum(max(0.0, 1.0 - s) for s in stds) / d
    c = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return v, c, sum(stds) / d


def vicreg(z1, z2, sim=25.0, var=25.0, cov=1.0, eps=1e-4):
    """Returns (loss, {"loss_inv", "loss_var", "loss_cov", "std"}). z1, z2: (N, d)."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n, d = z1.shape
    inv = sum(float(z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)
    v1, c1, s1 = _vicreg_view(z1, eps)
    v2, c2, s2 = _vicreg_view(z2, eps)
    terms = {"loss_inv": inv, "loss_var": (v1 + v2) / 2, "loss_cov": c1 + c2, "std": (s1 + s2) / 2}
    loss = sim * inv + var * terms["loss_var"] + cov * terms["loss_cov"]
    return loss, terms
