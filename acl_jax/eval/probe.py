"""Linear probe on frozen features: standardize on train, logistic regression, C chosen on val.

Multi-label tasks: one binary logistic regression per class (one-vs-rest); single-label tasks:
one multinomial logistic regression. Both lbfgs, L2. The inverse regularization C is chosen
from a log grid by macro AUROC on the VALIDATION split only; the model kept is the one fitted
on train with that C (fitting never sees validation or test records).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from acl_jax.eval.metrics import macro_metrics

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))


@dataclasses.dataclass
class Probe:
    scaler: StandardScaler
    models: list[LogisticRegression]  # one per class (multi-label) or one multinomial
    single: bool

    def scores(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) features -> (N, C) probabilities (per-class sigmoid or softmax)."""
        z = self.scaler.transform(x)
        if self.single:
            return self.models[0].predict_proba(z).astype(np.float32)
        return np.stack([m.predict_proba(z)[:, 1] for m in self.models], axis=1).astype(np.float32)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    single: bool,
    scaler: StandardScaler,
    max_iter: int = 1000,
) -> Probe:
    """Fits on standardized x (N, D) with labels y (N, C) {0,1} (one-hot when `single`)."""
    z = scaler.transform(x)
    with warnings.catch_warnings():
        # A non-converged fit at tiny C is still a valid (heavily regularized) candidate.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if single:
            models = [LogisticRegression(C=c, max_iter=max_iter).fit(z, y.argmax(axis=1))]
        else:
            models = [
                LogisticRegression(C=c, max_iter=max_iter).fit(z, y[:, k])
                for k in range(y.shape[1])
            ]
    return Probe(scaler, models, single)


def select_and_fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    classes: list[str],
    single: bool,
    grid: tuple[float, ...] = C_GRID,
) -> tuple[Probe, dict]:
    """Fits one probe per C on train, keeps the best by val macro AUROC (ties: smaller C).

    Returns (probe, selection) with selection = {"C", "val_macro_auroc_by_C"}.
    """
    scaler = StandardScaler().fit(x_train)
    best, best_auc, by_c = None, -np.inf, {}
    for c in grid:  # ascending: the strongest regularization wins ties
        probe = fit(x_train, y_train, c, single, scaler)
        auc = macro_metrics(y_val, probe.scores(x_val), classes)["macro_auroc"]
        by_c[f"{c:g}"] = auc
        if auc > best_auc:
            best, best_auc, best_c = probe, auc, c
    if best is None:
        raise ValueError(
            "no C gave a finite validation macro AUROC: the val split has no class "
            "with both positive and negative records"
        )
    return best, {"C": best_c, "val_macro_auroc_by_C": by_c}
