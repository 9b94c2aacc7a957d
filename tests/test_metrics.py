"""Evaluation metrics against scikit-learn, bootstrap intervals and the paired test; Dice of
wave segmentation against a NumPy reference."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from acl_jax.eval.metrics import (
    WAVES,
    _macro,  # the reference the sorted-once path must equal
    auroc,
    average_precision,
    bootstrap_ci,
    dice_bootstrap_ci,
    dice_counts,
    dice_from_counts,
    dice_metrics,
    macro_metrics,
    paired_bootstrap,
    paired_bootstrap_dice,
    roc_points,
)
from acl_jax.eval.resampled import SortedScores


def synthetic(n, num_classes=4, signal=1.0, seed=0):
    """Labels (n, C) and scores that carry `signal` about them, with rounded (tied) scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, num_classes)) < [0.1, 0.3, 0.5, 0.7][:num_classes]).astype(int)
    s = np.round(signal * y + rng.normal(size=y.shape), 1)
    return y, s


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_ap_equal_sklearn(seed):
    y, s = synthetic(60, seed=seed)
    for k in range(y.shape[1]):
        assert auroc(y[:, k], s[:, k]) == pytest.approx(roc_auc_score(y[:, k], s[:, k]), abs=1e-12)
        assert average_precision(y[:, k], s[:, k]) == pytest.approx(
            average_precision_score(y[:, k], s[:, k]), abs=1e-12
        )


def test_known_values():
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auroc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert average_precision(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(
        (1 / 1 + 2 / 3) / 2
    )
    assert np.isnan(auroc(np.ones(3), np.arange(3.0)))


def test_roc_points_match_sklearn():
    y, s = synthetic(40, seed=3)
    fpr, tpr = roc_points(y[:, 1], s[:, 1])
    ref_fpr, ref_tpr, _ = roc_curve(y[:, 1], s[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_macro_excludes_undefined_classes():
    y, s = synthetic(50, num_classes=3, seed=1)
    y[:, 0] = 0  # no positive
    y[:, 2] = 1  # no negative
    m = macro_metrics(y, s, ["a", "b", "c"])
    assert m["excluded_classes"] == ["a", "c"]
    assert list(m["per_class_auroc"]) == ["b"]
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y[:, 1], s[:, 1]))
    assert m["macro_auprc"] == pytest.approx(average_precision_score(y[:, 1], s[:, 1]))


def test_bootstrap_contains_estimate_and_narrows_with_more_records():
    widths = []
    for n in (40, 1000):
        y, s = synthetic(n, signal=1.5, seed=n)
        point = macro_metrics(y, s, list("abcd"))
        ci = bootstrap_ci(y, s, num=300, seed=0)
        lo, hi = ci["macro_auroc_ci"]
        assert lo <= point["macro_auroc"] <= hi
        assert ci["macro_auprc_ci"][0] <= point["macro_auprc"] <= ci["macro_auprc_ci"][1]
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2, widths
    y, s = synthetic(40, seed=7)
    assert bootstrap_ci(y, s, num=100, seed=1) == bootstrap_ci(y, s, num=100, seed=1)


def test_bootstrap_survives_resamples_without_positives():
    y, s = synthetic(30, seed=2)
    y[:, 0] = 0
    y[3, 0] = 1  # one positive: absent from about a third of the resamples
    ci = bootstrap_ci(y, s, num=200, seed=0)
    assert np.all(np.isfinite(ci["macro_auroc_ci"])) and ci["num_skipped"] == 0


def test_sorted_scores_give_the_resampled_macros_bit_for_bit():
    """A resample's macro AUROC and AUPRC from the scores sorted once (record counts) equal
    the same metrics computed on the resampled records, exactly: continuous and tied scores,
    a class some resamples draw no positive of, and a draw of negatives alone (NaN)."""
    y, s_tied = synthetic(300, num_classes=4, seed=6)
    y[:, 0] = 0
    y[:3, 0] = 1
    s = s_tied + 1e-3 * np.random.default_rng(1).normal(size=s_tied.shape)  # no ties
    rng = np.random.default_rng(0)
    for scores in (s, s_tied):
        ranked = SortedScores(y, scores)
        assert ranked.ties == (scores is s_tied)
        for idx in rng.integers(0, len(y), size=(60, len(y))):
            counts = np.bincount(idx, minlength=len(y))
            want_auroc, want_ap = _macro(y[idx], scores[idx])
            assert ranked.macros(counts) == (want_auroc, want_ap)
            assert ranked.macro_auroc(counts) == want_auroc
        negatives = np.bincount(np.flatnonzero(y.sum(axis=1) == 0)[:5], minlength=len(y))
        assert np.isnan(ranked.macros(negatives)).all() and np.isnan(ranked.macro_auroc(negatives))


def test_paired_bootstrap():
    y, good = synthetic(300, signal=2.0, seed=4)
    rng = np.random.default_rng(0)
    bad = good + rng.normal(scale=3.0, size=good.shape)
    better = paired_bootstrap(y, good, bad, num=300, seed=0)
    assert better["delta_macro_auroc"] > 0 and better["p_value"] < 0.05
    same = paired_bootstrap(y, good, good, num=300, seed=0)
    assert same["delta_macro_auroc"] == 0 and same["p_value"] == 1.0
    assert 0.0 <= better["p_value"] <= 1.0


def reference_dice(true, pred, label):
    """Dice of one label, straight from the definition: 2 |A and B| / (|A| + |B|)."""
    a, b = np.asarray(true) == label, np.asarray(pred) == label
    total = a.sum() + b.sum()
    return 2.0 * np.sum(a & b) / total if total else float("nan")


def test_dice_known_masks():
    true = np.array([0, 1, 1, 1, 0, 2, 2, 0, 3, 3, 3, 3])
    pred = np.array([1, 1, 0, 0, 0, 2, 2, 2, 3, 3, 3, 0])
    counts = dice_counts(true, pred)
    np.testing.assert_array_equal(counts, [[1, 2, 3], [2, 3, 2], [3, 3, 4]])
    m = dice_metrics(counts[None])
    # P: 2*1/(3+2), QRS: 2*2/(2+3), T: 2*3/(4+3), by hand.
    assert m["dice"] == pytest.approx({"P": 0.4, "QRS": 0.8, "T": 6 / 7})
    assert m["mean_dice"] == pytest.approx((0.4 + 0.8 + 6 / 7) / 3)
    assert dice_metrics(dice_counts(true, true)[None])["dice"] == {w: 1.0 for w in WAVES}


def test_dice_pooled_over_records_equals_numpy_on_the_concatenation():
    rng = np.random.default_rng(0)
    true = [rng.integers(0, 4, size=n) for n in rng.integers(50, 200, size=12)]
    pred = [np.where(rng.random(t.size) < 0.7, t, rng.integers(0, 4, t.size)) for t in true]
    true[3][:] = 0  # a record without waves (AF records lack P, for example)
    counts = np.stack([dice_counts(t, p) for t, p in zip(true, pred)])
    m = dice_metrics(counts)
    cat_t, cat_p = np.concatenate(true), np.concatenate(pred)
    for k, wave in enumerate(WAVES, start=1):
        assert m["dice"][wave] == pytest.approx(reference_dice(cat_t, cat_p, k), abs=1e-12)
        assert dice_from_counts(counts[5])[k - 1] == pytest.approx(
            reference_dice(true[5], pred[5], k), abs=1e-12
        )
    assert m["num_records"] == 12


def test_dice_undefined_when_a_wave_is_absent_from_both():
    true = np.array([0, 2, 2, 3, 3, 0])  # no P wave, none predicted
    pred = np.array([0, 2, 0, 3, 3, 3])
    m = dice_metrics(dice_counts(true, pred)[None])
    assert np.isnan(m["dice"]["P"]) and np.isnan(reference_dice(true, pred, 1))
    assert m["mean_dice"] == pytest.approx((2 / 3 + 0.8) / 2)  # mean over defined waves only
    # A P predicted where there is none is an error (Dice 0), not undefined.
    pred[0] = 1
    assert dice_metrics(dice_counts(true, pred)[None])["dice"]["P"] == 0.0


def test_dice_bootstrap_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    true = [rng.integers(0, 4, size=100) for _ in range(20)]
    pred = [np.where(rng.random(100) < rng.random(), t, 0) for t in true]
    counts = np.stack([dice_counts(t, p) for t, p in zip(true, pred)])
    point = dice_metrics(counts)
    ci = dice_bootstrap_ci(counts, num=300, seed=0)
    lo, hi = ci["mean_dice_ci"]
    assert lo < point["mean_dice"] < hi
    for w in WAVES:
        assert ci["dice_ci"][w][0] <= point["dice"][w] <= ci["dice_ci"][w][1]
    assert ci == dice_bootstrap_ci(counts, num=300, seed=0)
    assert ci != dice_bootstrap_ci(counts, num=300, seed=1)
    same = np.repeat(counts[:1], 10, axis=0)  # identical records: no spread at all
    one = dice_bootstrap_ci(same, num=50, seed=0)["mean_dice_ci"]
    assert one[0] == pytest.approx(one[1]) == pytest.approx(dice_metrics(same)["mean_dice"])


def test_paired_bootstrap_dice():
    rng = np.random.default_rng(2)
    true = [rng.integers(0, 4, size=80) for _ in range(40)]
    good = [np.where(rng.random(80) < 0.9, t, 0) for t in true]
    bad = [np.where(rng.random(80) < 0.4, t, 0) for t in true]
    ca = np.stack([dice_counts(t, p) for t, p in zip(true, good)])
    cb = np.stack([dice_counts(t, p) for t, p in zip(true, bad)])
    r = paired_bootstrap_dice(ca, cb, num=300, seed=0)
    assert r["delta_mean_dice"] == pytest.approx(
        dice_metrics(ca)["mean_dice"] - dice_metrics(cb)["mean_dice"]
    )
    assert r["delta_mean_dice"] > 0 and r["p_value"] < 0.05 and r["ci"][0] > 0
    same = paired_bootstrap_dice(ca, ca, num=100, seed=0)
    assert same["delta_mean_dice"] == 0 and same["p_value"] == 1.0
