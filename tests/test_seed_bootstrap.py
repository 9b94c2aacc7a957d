"""bench/seed_bootstrap.py (seed-aware paired bootstrap) and bench/compare_methods.py's row specs,
on synthetic per-record scores whose answer is known."""

import sys
from pathlib import Path

import numpy as np
import pytest

from acl_jax.eval.metrics import paired_bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import compare_methods  # noqa: E402
import compare_report  # noqa: E402
import seed_bootstrap as sb  # noqa: E402

N, C = 300, 3


def _labels(seed=0):
    return (np.random.default_rng(seed).random((N, C)) < 0.3).astype(np.int64)


def _scores(y, noise, seeds, start=0):
    """One (N, C) score matrix per seed: the labels plus Gaussian noise of scale `noise`."""
    return [y + noise * np.random.default_rng(100 + start + k).normal(size=y.shape) for k in seeds]


def test_one_seed_is_exactly_the_records_paired_bootstrap():
    y = _labels()
    a, b = _scores(y, 1.0, [0]), _scores(y, 1.2, [1])
    got = sb.seed_paired_difference(y, a, b, num=200, seed=3)
    want = paired_bootstrap(y, a[0], b[0], num=200, seed=3)
    assert got["delta"] == pytest.approx(want["delta_macro_auroc"], abs=1e-12)
    np.testing.assert_allclose(got["ci"], want["ci"], atol=1e-12)
    assert got["p_value"] == pytest.approx(want["p_value"])


def test_equal_methods_give_an_interval_around_zero():
    y = _labels(1)
    a, b = _scores(y, 1.0, range(3)), _scores(y, 1.0, range(3), start=10)
    out = sb.seed_paired_difference(y, a, b, num=300)
    assert out["ci"][0] < 0 < out["ci"][1] and out["p_value"] > 0.2
    assert out["seeds"] == [3, 3] and out["num_resamples"] == 300
    same = sb.seed_paired_difference(y, a, a, num=100)  # the same runs: exactly no difference
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_better_on_every_seed_and_record_excludes_zero():
    y = _labels(2)
    good, bad = _scores(y, 0.6, range(3)), _scores(y, 1.2, range(3), start=10)
    out = sb.seed_paired_difference(y, good, bad, num=300)
    assert out["delta"] > 0.05 and out["ci"][0] > 0 and out["p_value"] < 0.01


def test_seed_spread_widens_the_interval():
    """Seeds of very different quality: the seed-aware interval of the mean is wider than the
    records-only interval of one seed, and covers most of the per-seed spread."""
    y = _labels(3)
    runs = [_scores(y, noise, [k])[0] for k, noise in enumerate((0.5, 1.0, 2.0))]
    per_seed = [sb.macro_auroc(y, s) for s in runs]
    seeds = sb.seed_interval(y, runs, num=300)
    one = sb.seed_interval(y, runs[1:2], num=300)
    assert seeds["mean"] == pytest.approx(np.mean(per_seed))
    assert np.diff(seeds["ci"])[0] > 3 * np.diff(one["ci"])[0]
    assert seeds["ci"][0] < per_seed[1] < seeds["ci"][1]
    with pytest.raises(ValueError, match="score array of shape"):
        sb.seed_interval(y, [runs[0][:10]])


def test_row_specs_name_variants_and_ablations():
    rows = compare_methods.parse_rows(
        "simclr,acl_ecg:region_objective=inter_alignment:region_heads=true",
        "raw=acl_ecg:model.region_embed=false",
    )
    assert rows == [
        ("simclr", "simclr", []),
        (
            "acl_ecg:region_objective=inter_alignment:region_heads=true",
            "acl_ecg",
            ["acl_ecg.region_objective=inter_alignment", "acl_ecg.region_heads=true"],
        ),
        ("raw", "acl_ecg", ["model.region_embed=false"]),
    ]
    with pytest.raises(SystemExit, match="--methods entry 'nope'"):
        compare_methods.parse_rows("nope", "")
    with pytest.raises(SystemExit, match="expected METHOD:KEY=VALUE"):
        compare_methods.parse_rows("acl_ecg:region_objective", "")
    with pytest.raises(SystemExit, match="random_init takes no KEY=VALUE overrides"):
        compare_methods.parse_rows("random_init:data.window=500", "")


@pytest.mark.parametrize("resumed", [False, True])
def test_report_reads_params_and_window_from_a_fresh_or_resumed_log(tmp_path, resumed):
    log = tmp_path / "s0.train.log"
    header = "acl_ecg: 0.16M parameters, 1 devices, 1 processes, batch 256, window 250 at 100 Hz"
    first = "resumed from /run/checkpoints/1000\n" if resumed else ""
    log.write_text(f"{first}{header}, steps 0->1500\nstep 50/1500  loss 11.7\n")
    row = {"runs": [{"seed": 0, "train_log": str(log)}]}
    compare_report.describe(row)
    assert (row["params"], row["window"]) == ("0.16M", 250)
