"""Seed-aware bootstrap of test macro AUROC: resample training seeds, then test records.

A method run with K seeds gives K score matrices on the same test records. Its uncertainty has
two sources, the test records (which `python -m acl_jax.eval` already bootstraps) and the seed
(initialization, data order, augmentations, probe); a one-seed comparison sees only the first.
Each resample here draws, for every compared group (method), K_g of its seeds WITH replacement,
independently per group (seed s of one method shares nothing with seed s of another), then N
test records with replacement, SHARED by all groups (paired: record difficulty cancels), and
takes each group's mean over its drawn seeds of the macro AUROC on the drawn records:

    stat_g = (1 / K_g) sum_{k=1..K_g} macroAUROC(y[I], S_g[seed_k][I])

with I the drawn records. The point estimate is the mean over seeds on all records. With one
seed per group this is exactly acl_jax.eval.metrics.paired_bootstrap (same record draws for the
same `seed`), so the seed-aware numbers extend the one-seed ones rather than replace them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from acl_jax.eval.metrics import auroc, defined_classes, resample_indices
from acl_jax.eval.resampled import SortedScores


def macro_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """y (N, C) {0,1}, s (N, C) -> mean AUROC over classes with both labels; NaN if none."""
    ks = np.flatnonzero(defined_classes(y))
    return float(np.mean([auroc(y[:, k], s[:, k]) for k in ks])) if ks.size else float("nan")


# One score matrix's macro AUROC on each record draw, by (y, scores, draws): a table's cells
# share runs (each row's paired column reads the baseline's seeds), and each is scored once.
_DRAWS: dict[tuple, np.ndarray] = {}


def _record_draws(y: np.ndarray, s: np.ndarray, records: np.ndarray, seed: int) -> np.ndarray:
    """(num,) macro AUROC of s on each resample of `records` (num, N) drawn with `seed`."""
    key = tuple(hashlib.sha1(np.ascontiguousarray(a)).hexdigest() for a in (y, s))
    key += (records.shape, seed)
    if key not in _DRAWS:
        ranked = SortedScores(y, s)
        _DRAWS[key] = np.array(
            [ranked.macro_auroc(np.bincount(idx, minlength=len(y))) for idx in records]
        )
    return _DRAWS[key]


def seed_record_draws(
    y: np.ndarray, groups: list[list[np.ndarray]], *, num: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """y (N, C); groups: G lists of (N, C) scores, one per seed, rows in y's order.

    Returns (point (G,): mean over seeds of macro AUROC on all records, draws (M, G): the
    statistic of each resample (module docstring); resamples where a group's macro AUROC is
    undefined (a class lost its positives) are dropped, M <= num).
    """
    y = np.asarray(y)
    groups = [[np.asarray(s, float) for s in g] for g in groups]
    for g in groups:
        if not g or any(s.shape != y.shape for s in g):
            raise ValueError(f"every group needs >= 1 score array of shape {y.shape}")
    point = np.array([np.mean([macro_auroc(y, s) for s in g]) for g in groups])
    # Records from the same stream as paired_bootstrap; seeds from a separate one.
    records = resample_indices(len(y), num, seed)
    seed_rng = np.random.default_rng([seed, 1])
    values = [[_record_draws(y, s, records, seed) for s in g] for g in groups]  # (num,) each
    draws = []
    for r in range(num):
        row = []
        for g in values:
            picked = seed_rng.integers(0, len(g), size=len(g))
            row.append(np.mean([g[k][r] for k in picked]))
        draws.append(row)
    draws = np.asarray(draws)
    return point, draws[~np.isnan(draws).any(axis=1)]


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return [float(v) for v in np.percentile(values, [lo, hi])]


def seed_interval(
    y: np.ndarray, scores: list[np.ndarray], *, num: int = 1000, seed: int = 0, level=0.95
) -> dict:
    """One method's mean over seeds of test macro AUROC with its seed-and-record interval."""
    point, draws = seed_record_draws(y, [scores], num=num, seed=seed)
    if draws.size == 0:
        raise ValueError("no bootstrap resample had a defined class: too few test records")
    return {
        "mean": float(point[0]),
        "ci": _percentiles(draws[:, 0], level),
        "num_resamples": int(draws.shape[0]),
    }


def seed_paired_difference(
    y: np.ndarray,
    scores_a: list[np.ndarray],
    scores_b: list[np.ndarray],
    *,
    num: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """A - B in mean-over-seeds test macro AUROC: delta, its percentile interval, and the
    two-sided bootstrap p-value (2 x the smaller tail around 0, +1 corrected, as
    acl_jax.eval.metrics.paired_bootstrap)."""
    point, draws = seed_record_draws(y, [scores_a, scores_b], num=num, seed=seed)
    if draws.size == 0:
        raise ValueError("no bootstrap resample had a defined class: too few test records")
    diffs = draws[:, 0] - draws[:, 1]
    tail = min((diffs <= 0).sum() + 1, (diffs >= 0).sum() + 1) / (diffs.size + 1)
    return {
        "delta": float(point[0] - point[1]),
        "ci": _percentiles(diffs, level),
        "p_value": float(min(1.0, 2 * tail)),
        "num_resamples": int(diffs.size),
        "seeds": [len(scores_a), len(scores_b)],
    }


# When a row's per-record test scores are gone (a run whose eval file was lost with the machine
# that made it, before bench/run_scores.py kept them in the repo), only its per-seed test AUROCs
# remain. The intervals below use the seeds alone (Student t); they leave out the test-record
# part of the uncertainty, so reports mark them ("kind": "seeds").


def seeds_only_interval(values: list[float], *, level: float = 0.95) -> dict:
    """Mean of per-seed test macro AUROCs with a t interval over seeds (ci None for one seed)."""
    from scipy import stats

    v = np.asarray(values, float)
    out = {"mean": float(v.mean()), "ci": None, "kind": "seeds", "seeds": int(v.size)}
    if v.size > 1:
        half = stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
        out["ci"] = [float(v.mean() - half), float(v.mean() + half)]
    return out


def seeds_only_difference(a: list[float], b: list[float], *, level: float = 0.95) -> dict:
    """A - B in mean per-seed test macro AUROC: Welch's t interval and two-sided p-value over
    the seeds (independent seeds of two methods); ci and p None unless both have >= 2 seeds."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"delta": float(a.mean() - b.mean()), "ci": None, "p_value": None, "kind": "seeds"}
    out["seeds"] = [int(a.size), int(b.size)]
    if min(a.size, b.size) > 1:
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = np.sqrt(va + vb)
        if se == 0:  # identical values within each group: no spread to test against
            return out
        df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        half = stats.t.ppf((1 + level) / 2, df) * se
        out["ci"] = [float(out["delta"] - half), float(out["delta"] + half)]
        out["p_value"] = float(2 * stats.t.sf(abs(out["delta"]) / se, df))
    return out
