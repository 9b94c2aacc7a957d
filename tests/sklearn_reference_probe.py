"""The linear probe as it was before acl_jax.eval.logreg: scikit-learn, one fit per class per C.

The reference the JAX probe must agree with (tests/test_probe.py) and the baseline of
bench/probe.py. Same standardization, grid, objective and selection rule as acl_jax.eval.probe.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from acl_jax.eval.metrics import macro_metrics
from acl_jax.eval.probe import C_GRID


def fit_scores(x_train, y_train, c, single, max_iter=1000, tol=1e-4):
    """Fits at one C; returns scores(x) -> (N, C) probabilities, like Probe.scores. The old
    probe used sklearn's defaults (tol 1e-4); a small tol gives the objective's exact minimum."""
    scaler = StandardScaler().fit(x_train)
    z = scaler.transform(x_train)
    with warnings.catch_warnings():
        # A non-converged fit at tiny C is still a valid (heavily regularized) candidate.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if single:
            models = [
                LogisticRegression(C=c, max_iter=max_iter, tol=tol).fit(z, y_train.argmax(axis=1))
            ]
        else:
            models = [
                LogisticRegression(C=c, max_iter=max_iter, tol=tol).fit(z, y_train[:, k])
                for k in range(y_train.shape[1])
            ]

    def scores(x):
        zx = scaler.transform(x)
        if single:
            return models[0].predict_proba(zx).astype(np.float32)
        return np.stack([m.predict_proba(zx)[:, 1] for m in models], axis=1).astype(np.float32)

    return scores


def select_and_fit(x_train, y_train, x_val, y_val, classes, single, grid=C_GRID):
    """(scores of the C chosen on val, {"C", "val_macro_auroc_by_C"}); ties: smaller C."""
    best, best_auc, by_c = None, -np.inf, {}
    for c in grid:
        scores = fit_scores(x_train, y_train, c, single)
        auc = macro_metrics(y_val, scores(x_val), classes)["macro_auroc"]
        by_c[f"{c:g}"] = auc
        if auc > best_auc:
            best, best_auc, best_c = scores, auc, c
    if best is None:
        raise ValueError("no C gave a finite validation macro AUROC")
    return best, {"C": best_c, "val_macro_auroc_by_C": by_c}
