"""bench/seed_bootstrap.py (seed-aware paired bootstrap), bench/compare_methods.py's row specs,
bench/run_scores.py's kept scores and bench/compare_report.py's fallback to seeds-only intervals,
on synthetic per-record scores whose answer is known."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from acl_jax.eval.metrics import paired_bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import choose_default  # noqa: E402
import compare_methods  # noqa: E402
import compare_report  # noqa: E402
import run_scores  # noqa: E402
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


def _result(y, s, ids=None):
    """An eval result as `python -m acl_jax.eval --out` writes it (the fields the report reads)."""
    ids = ids or [f"r{i}" for i in range(len(y))]
    return {
        "task": "superdiagnostic",
        "classes": ["A", "B", "C"],
        "test_records": {"ids": ids, "labels": y.tolist(), "scores": s.tolist()},
    }


def test_kept_scores_round_trip_and_give_the_same_auroc(tmp_path):
    from acl_jax.compare import aligned

    y = _labels(4)
    (s,) = _scores(y, 1.0, [0])
    full = _result(y, s)
    run_scores.save(full, tmp_path / "row" / "s0.npz")
    kept = run_scores.load(tmp_path / "row" / "s0.npz")
    assert kept["task"] == "superdiagnostic" and kept["classes"] == ["A", "B", "C"]
    # Aligned against the full result in another record order: the same labels and AUROC.
    order = np.random.default_rng(0).permutation(N)
    shuffled = _result(y[order], s[order], [f"r{i}" for i in order])
    yy, a, b = aligned(shuffled, kept)
    np.testing.assert_array_equal(yy, y[order])
    assert sb.macro_auroc(yy, b) == pytest.approx(sb.macro_auroc(y, s), abs=1e-9)
    assert not list(tmp_path.glob("**/*.tmp.npz"))


def _args(tmp_path):
    return SimpleNamespace(
        task="superdiagnostic",
        data="D",
        steps=10,
        seeds=3,
        reference="ref",
        bootstrap=100,
        out=str(tmp_path / "t"),
    )


def _row(tmp_path, name, y, noise, seeds, start, keep):
    """A row whose seed runs kept their scores (keep[k]) or lost them (the path is gone)."""
    runs = []
    for k, s in zip(seeds, _scores(y, noise, seeds, start)):
        path = tmp_path / name / f"s{k}.npz"
        if keep[k]:
            run_scores.save(_result(y, s), path)
        auc = sb.macro_auroc(y, s)
        runs.append(
            {
                "seed": k,
                "scores": str(path),
                "test_macro_auroc": auc,
                "test_macro_auprc": 0.5,
                "val_macro_auroc": auc,
            }
        )
    return {"method": name, "objective": name, "overrides": [], "runs": runs}


def test_report_bootstraps_kept_scores_and_falls_back_to_seeds_when_one_is_lost(tmp_path):
    y = _labels(5)
    ref = _row(tmp_path, "ref", y, 1.0, range(3), 0, [True] * 3)
    full = _row(tmp_path, "full", y, 0.7, range(3), 10, [True] * 3)
    lost = _row(tmp_path, "lost", y, 0.7, range(3), 20, [True, False, True])
    compare_report.write_tables(_args(tmp_path), [ref, full, lost])
    # Every score kept: the seed-and-record bootstrap, as if computed from the arrays directly.
    want = sb.seed_paired_difference(
        y, _scores(y, 0.7, range(3), 10), _scores(y, 1.0, range(3), 0), num=100
    )
    assert full["vs_ref"]["ci"] == pytest.approx(want["ci"]) and "kind" not in full["vs_ref"]
    # One seed's scores gone: seeds only (Welch), never a bootstrap over the two that remain.
    aucs = [r["test_macro_auroc"] for r in lost["runs"]]
    ref_aucs = [r["test_macro_auroc"] for r in ref["runs"]]
    t = stats.ttest_ind(aucs, ref_aucs, equal_var=False)
    assert lost["vs_ref"]["kind"] == "seeds" and lost["interval"]["kind"] == "seeds"
    assert lost["vs_ref"]["p_value"] == pytest.approx(t.pvalue)
    assert lost["vs_ref"]["delta"] == pytest.approx(np.mean(aucs) - np.mean(ref_aucs))
    lo, hi = lost["interval"]["ci"]
    assert lo < np.mean(aucs) < hi and lost["interval"]["seeds"] == 3
    md = (tmp_path / "t.md").read_text()
    lost_line = next(x for x in md.splitlines() if x.startswith("| lost "))
    full_line = next(x for x in md.splitlines() if x.startswith("| full "))
    assert lost_line.count("\u2020") == 2 and "\u2020" not in full_line
    assert compare_report.SEEDS_ONLY_NOTE in md and (tmp_path / "t.png").stat().st_size > 0


def test_seeds_only_statistics_need_two_seeds():
    one = sb.seeds_only_interval([0.8])
    assert one["mean"] == 0.8 and one["ci"] is None
    d = sb.seeds_only_difference([0.8], [0.7, 0.71])
    assert d["delta"] == pytest.approx(0.095) and d["ci"] is None and d["p_value"] is None
    apart = sb.seeds_only_difference([0.86, 0.87, 0.865], [0.85, 0.851, 0.853])
    assert apart["ci"][0] > 0 and apart["p_value"] < 0.05


def test_a_run_for_some_rows_keeps_the_others(tmp_path, monkeypatch):
    """compare_methods over a table whose named rows are done: nothing trains, the rows it does
    not name stay, in the JSON's order, and the tables are rewritten from all of them."""
    y = _labels(6)
    rows = [
        {**_row(tmp_path, "acl_ecg", y, 1.0, [0], 0, [True]), "overrides": []},
        {**_row(tmp_path, "simclr", y, 1.2, [0], 5, [True]), "overrides": []},
    ]
    out = tmp_path / "t"
    meta = {"data": "D", "task": "superdiagnostic", "steps": 10}
    (tmp_path / "t.json").write_text(json.dumps({**meta, "rows": rows}))
    argv = ["compare_methods.py", "--data", "D", "--steps", "10", "--methods", "simclr"]
    argv += ["--workroot", str(tmp_path / "w"), "--out", str(out), "--bootstrap", "50"]
    monkeypatch.setattr(sys, "argv", argv)
    compare_methods.main()
    got = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["method"] for r in got] == ["acl_ecg", "simclr"]
    assert got[1]["vs_acl_ecg"]["delta"] < 0 and not (tmp_path / "w" / "simclr").exists()
    # The scores are lost (a new machine): the named row keeps its cached bootstraps, it does
    # not fall back to seeds-only statistics.
    for path in tmp_path.glob("*/s0.npz"):
        path.unlink()
    compare_methods.main()
    again = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert again[1]["interval"] == got[1]["interval"] and "kind" not in again[1]["interval"]
    assert again[1]["vs_acl_ecg"] == got[1]["vs_acl_ecg"]
    monkeypatch.setattr(sys, "argv", [*argv[:-6], "--reference", "nope", *argv[-6:]])
    with pytest.raises(SystemExit, match="'nope' is not one of the rows"):
        compare_methods.main()


def test_default_is_chosen_on_val_among_acl_rows_with_every_seed():
    def row(name, objective, vals, tests):
        runs = [
            {"seed": k, "val_macro_auroc": v, "test_macro_auroc": t}
            for k, (v, t) in enumerate(zip(vals, tests))
        ]
        return {"method": name, "objective": objective, "overrides": [], "runs": runs}

    table = {
        "rows": [
            row("acl_ecg", "acl_ecg", [0.86, 0.86, 0.86], [0.90, 0.90, 0.90]),  # best on test
            row("acl_ecg:x=1", "acl_ecg", [0.87, 0.86, 0.87], [0.80, 0.80, 0.80]),
            row("cmsc", "cmsc", [0.99, 0.99, 0.99], [0.99, 0.99, 0.99]),  # not an ACL-ECG row
        ]
    }
    ranked = choose_default.rank(table, 3)
    assert [r["method"] for r in ranked] == ["acl_ecg:x=1", "acl_ecg"]
    assert ranked[0]["val_macro_auroc"] == pytest.approx(0.8667, abs=1e-4)
    table["rows"][0]["runs"].pop()
    with pytest.raises(ValueError, match=r"acl_ecg \(2 of 3\)"):
        choose_default.rank(table, 3)


def test_a_workdir_is_finished_only_with_its_final_checkpoint(tmp_path):
    (tmp_path / "checkpoints" / "1250").mkdir(parents=True)
    assert not compare_methods._finished(tmp_path, 1500)  # resumable: train it to the end
    (tmp_path / "checkpoints" / "1500.orbax-checkpoint-tmp-9").mkdir()  # still being written
    assert not compare_methods._finished(tmp_path, 1500)
    (tmp_path / "checkpoints" / "1500").mkdir()
    assert compare_methods._finished(tmp_path, 1500)


def test_a_table_re_renders_from_its_json_against_another_reference(tmp_path, monkeypatch):
    y = _labels(7)
    rows = [
        _row(tmp_path, "ref", y, 1.0, range(2), 0, [True, True]),
        _row(tmp_path, "other", y, 0.7, range(2), 10, [True, True]),
    ]
    compare_report.write_tables(_args(tmp_path), rows)
    argv = ["compare_report.py", str(tmp_path / "t"), "--reference", "other"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "v"), "--bootstrap", "100"])
    compare_report.main()
    got = {r["method"]: r for r in json.loads((tmp_path / "v.json").read_text())["rows"]}
    assert got["ref"]["vs_other"]["delta"] == pytest.approx(-got["other"]["vs_ref"]["delta"])
    assert "AUROC - other" in (tmp_path / "v.md").read_text()
    monkeypatch.setattr(sys, "argv", [*argv[:2], "--reference", "nope"])
    with pytest.raises(SystemExit, match="'nope' is not one of the rows"):
        compare_report.main()
