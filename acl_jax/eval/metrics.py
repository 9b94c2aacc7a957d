"""Metrics over records: macro AUROC / AUPRC, bootstrap CIs, paired bootstrap tests; Dice of
per-sample wave segmentation (bottom of the file).

Labels are y (N, C) in {0, 1} (one-hot for single-label tasks), scores s (N, C) float. A class
is DEFINED on a set of records when it has at least one positive and one negative there; AUROC
and average precision are computed for defined classes only, and the macro average is the mean
over the defined classes. Undefined classes are reported, never averaged in as 0.5 or NaN.

AUROC is the Mann-Whitney statistic with tied scores counted 1/2 (equal to
sklearn.metrics.roc_auc_score); average precision is sum_n (R_n - R_{n-1}) P_n over the distinct
score thresholds (equal to sklearn.metrics.average_precision_score). Both are numpy here so that
1000 bootstrap resamples cost milliseconds, not sklearn's per-call overhead.

Bootstrap: each resample draws N record indices with replacement (seeded). A class may lose all
its positives in a resample; that resample's macro is then the mean over the classes defined in
it (the alternative, dropping the whole resample, biases the CI towards resamples rich in rare
classes). Resamples with no defined class at all are skipped and counted. A resample's macros
come from the scores sorted once (acl_jax/eval/resampled.py), equal bit for bit to computing
them on the resampled records.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from acl_jax.eval.resampled import SortedScores


def defined_classes(y: np.ndarray) -> np.ndarray:
    """y (N, C) {0,1} -> (C,) bool: the class has both a positive and a negative."""
    pos = y.sum(axis=0)
    return (pos > 0) & (pos < y.shape[0])


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """y (N,) {0,1}, s (N,) -> AUROC (ties 1/2); NaN when only one class is present."""
    y = np.asarray(y, bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks: a tie between a positive and a negative counts 1/2
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """y (N,) {0,1}, s (N,) -> average precision (sklearn's definition); NaN without positives."""
    y = np.asarray(y, bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(s, np.float64), kind="stable")
    s_sorted, y_sorted = np.asarray(s)[order], y[order]
    tp = np.cumsum(y_sorted)
    # One operating point per distinct score: the last index of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def macro_metrics(y: np.ndarray, s: np.ndarray, classes: list[str]) -> dict:
    """Point estimates: macro AUROC/AUPRC over defined classes, per-class values, exclusions."""
    y = np.asarray(y)
    ok = defined_classes(y)
    per_auroc = {c: auroc(y[:, k], s[:, k]) for k, c in enumerate(classes) if ok[k]}
    per_ap = {c: average_precision(y[:, k], s[:, k]) for k, c in enumerate(classes) if ok[k]}
    return {
        "macro_auroc": float(np.mean(list(per_auroc.values()))) if per_auroc else float("nan"),
        "macro_auprc": float(np.mean(list(per_ap.values()))) if per_ap else float("nan"),
        "per_class_auroc": per_auroc,
        "per_class_auprc": per_ap,
        "excluded_classes": [c for k, c in enumerate(classes) if not ok[k]],
        "num_records": int(y.shape[0]),
    }


def _macro(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    ok = defined_classes(y)
    if not ok.any():
        return float("nan"), float("nan")
    ks = np.flatnonzero(ok)
    return (
        float(np.mean([auroc(y[:, k], s[:, k]) for k in ks])),
        float(np.mean([average_precision(y[:, k], s[:, k]) for k in ks])),
    )


def resample_indices(n: int, num: int, seed: int) -> np.ndarray:
    """(num, n) int64 bootstrap index sets; identical for the same (n, num, seed)."""
    return np.random.default_rng(seed).integers(0, n, size=(num, n))


def bootstrap_ci(
    y: np.ndarray, s: np.ndarray, *, num: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Percentile CIs of macro AUROC and AUPRC over records resampled with replacement."""
    ranked = SortedScores(y, s)  # each resample's macros as _macro(y[i], s[i]), bit for bit
    stats = []
    for i in resample_indices(len(y), num, seed):
        stats.append(ranked.macros(np.bincount(i, minlength=len(y))))
    stats = np.array(stats)
    keep = ~np.isnan(stats[:, 0])
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    auroc_ci = np.percentile(stats[keep, 0], [lo, hi]) if keep.any() else [np.nan] * 2
    auprc_ci = np.percentile(stats[keep, 1], [lo, hi]) if keep.any() else [np.nan] * 2
    return {
        "macro_auroc_ci": [float(v) for v in auroc_ci],
        "macro_auprc_ci": [float(v) for v in auprc_ci],
        "level": level,
        "num_resamples": num,
        "num_skipped": int((~keep).sum()),
        "seed": seed,
    }


def paired_bootstrap(
    y: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, *, num: int = 1000, seed: int = 0
) -> dict:
    """Difference in macro AUROC (A - B) on the same records and its two-sided bootstrap p-value.

    Both models are scored on the SAME resample each time, so record difficulty cancels. The
    p-value is 2 x the smaller tail of the bootstrap differences around 0, with the +1 correction
    (never exactly 0 from a finite number of resamples), clipped to [0, 1].
    """
    delta = _macro(y, s_a)[0] - _macro(y, s_b)[0]
    ranked_a, ranked_b = SortedScores(y, s_a), SortedScores(y, s_b)
    diffs = []
    for i in resample_indices(len(y), num, seed):
        counts = np.bincount(i, minlength=len(y))
        a, b = ranked_a.macro_auroc(counts), ranked_b.macro_auroc(counts)
        if not (np.isnan(a) or np.isnan(b)):
            diffs.append(a - b)
    diffs = np.asarray(diffs)
    if diffs.size == 0:
        raise ValueError("no bootstrap resample had a defined class: too few test records")
    tail = min((diffs <= 0).sum() + 1, (diffs >= 0).sum() + 1) / (diffs.size + 1)
    return {
        "delta_macro_auroc": float(delta),
        "ci": [float(v) for v in np.percentile(diffs, [2.5, 97.5])],
        "p_value": float(min(1.0, 2 * tail)),
        "num_resamples": int(diffs.size),
        "seed": seed,
    }


def roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve of one defined class, thresholds at the distinct scores."""
    y = np.asarray(y, bool)
    order = np.argsort(-np.asarray(s, np.float64), kind="stable")
    s_sorted, y_sorted = np.asarray(s)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tp, fp = np.cumsum(y_sorted)[last], np.cumsum(~y_sorted)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


# --- Dense wave segmentation (LUDB): Dice per wave over the samples of records ---------------
# Labels per sample: 0 none, 1 P, 2 QRS, 3 T (acl_jax.data.ludb.wave_masks). Dice of wave c on a
# set of records = 2 |pred = c and true = c| / (|pred = c| + |true = c|), POOLED over all their
# samples (each record contributes its samples, not one averaged score); undefined (NaN) when
# the wave is absent from both. Records are the resampling unit of the bootstrap, as above.
WAVES = ("P", "QRS", "T")


def dice_counts(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """true, pred (T,) int labels of one record -> (3, 3) int64 rows P, QRS, T; columns
    (|pred = c and true = c|, |pred = c|, |true = c|): the sufficient statistics of Dice."""
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"true {true.shape} and pred {pred.shape} label shapes differ")
    rows = []
    for c in range(1, len(WAVES) + 1):
        t, p = true == c, pred == c
        rows.append([np.sum(t & p), np.sum(p), np.sum(t)])
    return np.asarray(rows, np.int64)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """counts (..., 3, 3) (summed over records) -> Dice (..., 3) per wave; NaN where undefined."""
    counts = np.asarray(counts, np.float64)
    denom = counts[..., 1] + counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * counts[..., 0] / denom, np.nan)


def _mean_dice(summed: np.ndarray) -> np.ndarray:
    """summed counts (..., 3, 3) -> mean Dice over the defined waves (...,), NaN if none."""
    dice = dice_from_counts(summed)
    out = np.full(dice.shape[:-1], np.nan)
    ok = np.isfinite(dice).any(axis=-1)
    out[ok] = np.nanmean(dice[ok], axis=-1)
    return out


def dice_metrics(counts: np.ndarray) -> dict:
    """Per-record counts (R, 3, 3) -> pooled Dice per wave and their mean over defined waves."""
    summed = np.asarray(counts).sum(axis=0)
    return {
        "dice": {w: float(d) for w, d in zip(WAVES, dice_from_counts(summed))},
        "mean_dice": float(_mean_dice(summed)),
        "num_records": int(len(counts)),
    }


def dice_bootstrap_ci(
    counts: np.ndarray, *, num: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Percentile CIs of the pooled Dice per wave and of the mean Dice, records resampled."""
    summed = np.asarray(counts)[resample_indices(len(counts), num, seed)].sum(axis=1)
    dice = dice_from_counts(summed)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def ci(values: np.ndarray) -> list[float]:
        values = values[np.isfinite(values)]
        return [float(v) for v in np.percentile(values, [lo, hi])] if values.size else [np.nan] * 2

    return {
        "dice_ci": {w: ci(dice[:, k]) for k, w in enumerate(WAVES)},
        "mean_dice_ci": ci(_mean_dice(summed)),
        "level": level,
        "num_resamples": num,
        "seed": seed,
    }


def paired_bootstrap_dice(
    counts_a: np.ndarray, counts_b: np.ndarray, *, num: int = 1000, seed: int = 0
) -> dict:
    """Difference in mean Dice (A - B) on the same records (R, 3, 3) each: CI and two-sided
    paired bootstrap p-value, computed as `paired_bootstrap` does for macro AUROC."""
    counts_a, counts_b = np.asarray(counts_a), np.asarray(counts_b)
    delta = float(_mean_dice(counts_a.sum(axis=0)) - _mean_dice(counts_b.sum(axis=0)))
    idx = resample_indices(len(counts_a), num, seed)
    diffs = _mean_dice(counts_a[idx].sum(axis=1)) - _mean_dice(counts_b[idx].sum(axis=1))
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        raise ValueError("no bootstrap resample had a defined Dice: the records hold no wave")
    tail = min((diffs <= 0).sum() + 1, (diffs >= 0).sum() + 1) / (diffs.size + 1)
    return {
        "delta_mean_dice": delta,
        "ci": [float(v) for v in np.percentile(diffs, [2.5, 97.5])],
        "p_value": float(min(1.0, 2 * tail)),
        "num_resamples": int(diffs.size),
        "seed": seed,
    }
