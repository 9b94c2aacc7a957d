"""Linear probe on frozen features: standardize on train, logistic regression, C chosen on val.

Multi-label tasks: one binary logistic regression per class (one-vs-rest); single-label tasks:
one multinomial logistic regression (with two classes, one binary regression on the second, as
scikit-learn does). The objective is scikit-learn's LogisticRegression with its L2 penalty:
C * sum of log losses + ||W||^2 / 2, intercept unpenalized. Every (class, C) pair of the grid is
fitted at once on device by `acl_jax.eval.logreg` (batched L-BFGS, a progress bar on stderr).
The inverse regularization C is chosen from a log grid by macro AUROC on the VALIDATION split
only; the model kept is the one fitted on train with that C (fitting never sees validation or
test records).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.special import expit, softmax
from tqdm import tqdm

from acl_jax.eval import logreg
from acl_jax.eval.metrics import macro_metrics

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))


@dataclasses.dataclass(frozen=True)
class Probe:
    """A fitted probe. mean, scale (D,): train standardization; coef (K, D), intercept (K,) on
    standardized features: K = classes (one-vs-rest or multinomial) or 1 (two-class single)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    single: bool

    def scores(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) features -> (N, C) probabilities (per-class sigmoid or softmax)."""
        logits = standardize(x, self.mean, self.scale) @ self.coef.T + self.intercept
        if not self.single:
            return expit(logits).astype(np.float32)
        if self.coef.shape[0] == 1:
            p = expit(logits[:, 0])
            return np.stack([1.0 - p, p], axis=1).astype(np.float32)
        return softmax(logits, axis=1).astype(np.float32)


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D) -> train mean and scale (D,) float64; constant features get scale 1."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float64) - mean) / scale


def _problems(y: np.ndarray, single: bool, grid: tuple[float, ...], classes: list[str]):
    """Targets (N, P, K), 1/C (P,), prevalence (P, K) and starting intercepts (P, K); problem
    p = g * (classes per C) + k covers grid[g] (one-vs-rest) or is grid[g] (single-label)."""
    y = np.asarray(y, np.float64)
    n, num_classes = y.shape
    prev = y.mean(axis=0)
    if single:
        if num_classes < 2 or (prev == 0).any():
            raise ValueError(
                f"single-label probe: every one of the {num_classes} classes needs a train "
                f"record, and at least 2 classes (train counts {y.sum(axis=0).astype(int)})"
            )
        if num_classes == 2:  # sklearn fits one binary regression for two classes
            y = y[:, 1:]
            prev = prev[1:]
    elif ((prev == 0) | (prev == 1)).any():
        bad = [classes[k] for k in np.flatnonzero((prev == 0) | (prev == 1))]
        raise ValueError(
            f"probe: classes {bad} are positive in none or all of the {n} train "
            "records: a logistic regression needs both labels in train"
        )
    g = len(grid)
    binary = not single or num_classes == 2
    if binary:  # one problem per (C, class), K = 1
        targets = np.tile(y, (1, g))[:, :, None]
        p = np.tile(prev, g)[:, None]
        init = np.log(p / (1.0 - p))
        inv_c = np.repeat(1.0 / np.asarray(grid), y.shape[1])
    else:
        targets = np.broadcast_to(y[:, None, :], (n, g, num_classes))
        p = np.broadcast_to(prev, (g, num_classes))
        init = np.log(p) - np.log(p).mean(axis=1, keepdims=True)
        inv_c = 1.0 / np.asarray(grid)
    return targets, inv_c, p, init


def fit_grid(
    x: np.ndarray,
    y: np.ndarray,
    single: bool,
    grid: tuple[float, ...] = C_GRID,
    classes: list[str] | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tuple[list[Probe], dict]:
    """One probe per C of `grid`, all fitted in one batched solve on x (N, D), y (N, C) {0, 1}
    (one-hot when `single`). Returns (probes, fit report: iterations, gradients, failures)."""
    classes = classes or [str(k) for k in range(y.shape[1])]
    mean, scale = standardization(x)
    targets, inv_c, prev, init = _problems(y, single, grid, classes)
    num_p = targets.shape[1]
    with tqdm(total=num_p, desc=f"linear probe ({num_p} fits)", unit="fit", disable=None) as bar:

        def progress(done: int, running: int) -> None:
            bar.update(num_p - running - bar.n)
            bar.set_postfix(iterations=done)

        sol = logreg.solve(
            standardize(x, mean, scale),
            targets,
            inv_c,
            prev,
            init,
            tol=tol,
            max_iter=max_iter,
            progress=progress,
        )
    per_c = num_p // len(grid)
    probes = []
    for g in range(len(grid)):
        rows = slice(g * per_c, (g + 1) * per_c)
        coef, intercept = sol.coef[rows], sol.intercept[rows]
        if per_c > 1 or not single:  # one-vs-rest or binary single: one output per problem
            coef, intercept = coef[:, 0], intercept[:, 0]
        else:  # multinomial: one problem with K outputs
            coef, intercept = coef[0], intercept[0]
        probes.append(Probe(mean, scale, coef, intercept, single))
    failed = [
        (f"{classes[p % per_c]} " if not single else "") + f"C={grid[p // per_c]:g}"
        for p in np.flatnonzero(~sol.converged)
    ]
    report = {
        "solver": "jax-lbfgs",
        "tol": tol,
        "iterations": int(sol.iterations.max()),
        "max_gradient": float(sol.max_grad.max()),
        "not_converged": failed,
    }
    if failed:
        warnings.warn(
            f"linear probe: {len(failed)} of {num_p} fits did not reach max |gradient| <= {tol:g} "
            f"in {max_iter} iterations (largest {report['max_gradient']:.3g}): {failed[:5]}",
            RuntimeWarning,
            stacklevel=2,
        )
    return probes, report


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

    Returns (probe, selection) with selection = {"C", "val_macro_auroc_by_C", "fit"}.
    """
    probes, report = fit_grid(x_train, y_train, single, grid, classes)
    best, best_auc, by_c = None, -np.inf, {}
    for c, probe in zip(grid, probes):  # ascending: the strongest regularization wins ties
        auc = macro_metrics(y_val, probe.scores(x_val), classes)["macro_auroc"]
        by_c[f"{c:g}"] = auc
        if auc > best_auc:
            best, best_auc, best_c = probe, auc, c
    if best is None:
        raise ValueError(
            "no C gave a finite validation macro AUROC: the val split has no class "
            "with both positive and negative records"
        )
    return best, {"C": best_c, "val_macro_auroc_by_C": by_c, "fit": report}
