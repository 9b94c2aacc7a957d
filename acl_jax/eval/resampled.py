"""Macro AUROC and AUPRC of bootstrap resamples without re-sorting: scores sorted once per class.

A bootstrap resample of N records is its record counts w (N,) (record i drawn w_i times;
`np.bincount(idx, minlength=N)`). Sorting each class's scores once, the metrics of the
resampled records y[idx], s[idx] follow from cumulative sums of the counts in that order:

    AUROC_c = sum_{i pos} w_i (W-(s < s_i) + W-(s = s_i) / 2) / (W+ W-)

(the Mann-Whitney statistic, ties 1/2; W-(.) sums the counts of negatives whose score satisfies
(.), W+ and W- count the drawn positives and negatives), and, with thresholds at the distinct
drawn scores t_1 > t_2 > ... (a run of equal scores is one threshold; a run none of whose
records was drawn is none),

    AP_c = sum_k (R_k - R_{k-1}) P_k,   R_k = TP_k / W+,   P_k = TP_k / (TP_k + FP_k).

Every count is an integer, so the sums are exact, and each division and the final sums take
the same operands, in the same order, as acl_jax.eval.metrics.auroc and average_precision on
y[idx], s[idx]: the results are equal bit for bit (tested). For PTB-XL's `all` task (71
classes, 2,173 test records) one resample's AUROC takes 4 ms rather than 15 and both macros
11 ms rather than 26. Macros average over the classes with both labels drawn, as the module
docstring of metrics.py describes.
"""

from __future__ import annotations

import numpy as np


class SortedScores:
    """Labels y (N, C) {0,1} and scores s (N, C), sorted once per class (ascending). Arrays are
    kept class-major, (C, N), so that the sums run along contiguous rows."""

    def __init__(self, y: np.ndarray, s: np.ndarray):
        s = np.asarray(s, np.float64).T
        n = s.shape[1]
        self.order = np.argsort(s, axis=1, kind="stable")  # (C, N)
        ss = np.take_along_axis(s, self.order, axis=1)
        self.pos = np.take_along_axis(np.asarray(y, bool).T, self.order, axis=1)
        # Runs of equal scores: per sorted position, the run's first index and one past its last.
        idx = np.arange(n)
        first = np.ones_like(ss, bool)
        first[:, 1:] = ss[:, 1:] != ss[:, :-1]
        last = np.ones_like(ss, bool)
        last[:, :-1] = first[:, 1:]
        self.first = first
        self.start = np.maximum.accumulate(np.where(first, idx, 0), axis=1)
        self.end = np.minimum.accumulate(np.where(last, idx + 1, n)[:, ::-1], axis=1)[:, ::-1]
        self.ties = bool((~first).any())  # without ties a run is its own position alone

    def _prefix(self, counts: np.ndarray):
        """counts (N,) -> (w_pos (C, N) in sorted order, exclusive prefix sums (C, N + 1) of
        the drawn positives and of all drawn records, defined (C,) bool). Integers throughout,
        so every sum below, suffix sums as totals minus prefixes included, is exact."""
        w = np.asarray(counts)[self.order].astype(np.float64)
        w_pos = w * self.pos
        zero = np.zeros((len(w), 1))
        cum_pos = np.concatenate([zero, np.cumsum(w_pos, axis=1)], axis=1)
        cum_all = np.concatenate([zero, np.cumsum(w, axis=1)], axis=1)
        n_pos, n_all = cum_pos[:, -1], cum_all[:, -1]
        return w_pos, cum_pos, cum_all, (n_pos > 0) & (n_pos < n_all)

    def _run(self, a: np.ndarray, at: np.ndarray, shift: int) -> np.ndarray:
        """a (C, N + 1) at each sorted position's run boundary `at` (self.start or self.end);
        without ties that is the position itself (shift 0) or the next one (shift 1)."""
        if self.ties:
            return np.take_along_axis(a, at, axis=1)
        return a[:, shift : a.shape[1] - 1 + shift]

    def macro_auroc(self, counts: np.ndarray) -> float:
        """counts (N,) draws per record -> mean AUROC over the classes with both labels drawn
        (NaN if none)."""
        return self._auroc(self._prefix(counts))

    def macros(self, counts: np.ndarray) -> tuple[float, float]:
        """counts (N,) -> (macro AUROC, macro AUPRC), the prefix sums computed once."""
        prefix = self._prefix(counts)
        return self._auroc(prefix), self._auprc(prefix)

    def _auroc(self, prefix) -> float:
        w_pos, cum_pos, cum_all, ok = prefix
        if not ok.any():
            return float("nan")
        cum_neg = cum_all - cum_pos
        below = self._run(cum_neg, self.start, 0)  # drawn negatives under the run
        tied = self._run(cum_neg, self.end, 1) - below  # drawn negatives in it
        u = (w_pos * (below + tied / 2)).sum(axis=1)
        n_pos, n_neg = cum_pos[:, -1], cum_neg[:, -1]
        return float(np.mean(u[ok] / (n_pos[ok] * n_neg[ok])))

    def _auprc(self, prefix) -> float:
        """The mean average precision over the classes with both labels drawn."""
        _, cum_pos, cum_all, ok = prefix
        if not ok.any():
            return float("nan")
        # Suffix sums: at a run's first position, TP and drawn records at or above its score;
        # at one past its end, those of the next higher threshold (0 above the top).
        n_pos = cum_pos[:, -1:]
        tp = n_pos - cum_pos
        cnt = cum_all[:, -1:] - cum_all
        drawn = self.first & (cnt[:, :-1] > self._run(cnt, self.end, 1))
        with np.errstate(invalid="ignore", divide="ignore"):  # undrawn runs: never summed
            recall = tp / n_pos
            gain = recall[:, :-1] - self._run(recall, self.end, 1)
            terms = gain * (tp[:, :-1] / cnt[:, :-1])
        # Summed from the highest threshold down, the kept terms alone: np.sum of exactly the
        # array average_precision sums, so the same rounding.
        aps = [np.sum(terms[c, drawn[c]][::-1].copy()) for c in np.flatnonzero(ok)]
        return float(np.mean(aps))
