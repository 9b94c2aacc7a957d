"""Evaluation metrics against scikit-learn, bootstrap intervals and the paired test."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from acl_jax.eval.metrics import (
    auroc,
    average_precision,
    bootstrap_ci,
    macro_metrics,
    paired_bootstrap,
    roc_points,
)


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


def test_paired_bootstrap():
    y, good = synthetic(300, signal=2.0, seed=4)
    rng = np.random.default_rng(0)
    bad = good + rng.normal(scale=3.0, size=good.shape)
    better = paired_bootstrap(y, good, bad, num=300, seed=0)
    assert better["delta_macro_auroc"] > 0 and better["p_value"] < 0.05
    same = paired_bootstrap(y, good, good, num=300, seed=0)
    assert same["delta_macro_auroc"] == 0 and same["p_value"] == 1.0
    assert 0.0 <= better["p_value"] <= 1.0
