"""The evaluation binary end to end on the prepared real sample and a tiny pretraining run."""

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from acl_jax.compare import CompareError, compare
from acl_jax.compare import main as compare_main
from acl_jax.config import load_config
from acl_jax.data import pipeline
from acl_jax.eval import (
    EvalArgs,
    EvalError,
    Evaluation,
    check_compatible,
    evaluate,
    follow,
    report,
    tasks,
)
from acl_jax.train.loop import replace, train

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.py"


def tiny(data_dir, **train_):
    cfg = load_config(TINY)
    return replace(
        cfg,
        data={"dir": str(data_dir), "batch_size": 16, "window": 200},
        model={"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16},
        train={"log_every": 5, "async_checkpoint": False, **train_},
    )


@pytest.fixture(scope="module")
def pretrained(prepared_sample, tmp_path_factory):
    """A tiny pretraining run with `follow` evaluating it from a thread, started while the
    workdir was still empty: (workdir, steps follow evaluated, its results)."""
    out = tmp_path_factory.mktemp("pretrain")
    steps, results = [], []
    watcher = threading.Thread(
        target=lambda: steps.extend(
            follow(
                args(prepared_sample, workdir=str(out)),
                timeout=300,
                on_result=results.append,
                poll=0.2,
            )
        )
    )
    watcher.start()
    train(tiny(prepared_sample, steps=4, ckpt_every=2), out)
    watcher.join(timeout=300)
    assert not watcher.is_alive()
    return out, steps, results


@pytest.fixture(scope="module")
def workdir(pretrained):
    return pretrained[0]


def args(data, **kw):
    return EvalArgs(data=str(data), task="superdiagnostic", bootstrap=100, batch_size=64, **kw)


def cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "acl_jax.eval", *map(str, argv)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_linear_cli_writes_json_md_png(prepared_sample, workdir, tmp_path):
    out = tmp_path / "lin.json"
    proc = cli(
        "--workdir",
        workdir,
        "--data",
        prepared_sample,
        "--task",
        "superdiagnostic",
        "--label-fraction",
        "0.5",
        "--bootstrap",
        "100",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| test | 14 |" in proc.stdout and "macro AUROC" in proc.stdout
    r = json.loads(out.read_text())
    assert r["step"] == 4 and r["protocol"] == "linear" and r["label_fraction"] == 0.5
    assert r["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert 0.0 <= r["test"]["macro_auroc"] <= 1.0 and np.isfinite(r["val"]["macro_auroc"])
    lo, hi = r["test"]["macro_auroc_ci"]
    assert lo <= r["test"]["macro_auroc"] <= hi
    assert r["counts"]["train"]["kept"] + r["counts"]["train"]["dropped_label_fraction"] == 156
    assert r["selection"]["C"] in [float(c) for c in r["selection"]["val_macro_auroc_by_C"]]
    assert len(r["test_records"]["ids"]) == len(r["test_records"]["scores"]) == 14
    assert r["config"]["model"]["widths"] == [8, 16]
    assert out.with_suffix(".md").read_text().startswith("### superdiagnostic: linear")
    assert out.with_name("lin_roc.png").read_bytes()[:4] == b"\x89PNG"


def test_test_split_is_sealed_until_selection_and_results_repeat(prepared_sample, pretrained):
    workdir, _, followed = pretrained
    run = Evaluation(args(prepared_sample, workdir=str(workdir)))
    with pytest.raises(RuntimeError, match="before select"):
        run.evaluate_test()
    run.select()
    assert "features_test_s" not in run.timings  # selection never computed test features
    result = run.evaluate_test()
    with pytest.raises(RuntimeError, match="twice"):
        run.evaluate_test()
    assert "features_test_s" in run.timings
    # Same checkpoint, same seed: the same result as the follow thread's evaluation.
    np.testing.assert_array_equal(
        result["test_records"]["scores"], followed[-1]["test_records"]["scores"]
    )
    assert result["selection"] == followed[-1]["selection"]


def test_finetune_runs_the_sharded_step_and_keeps_the_best(prepared_sample, workdir):
    r = evaluate(
        args(
            prepared_sample,
            workdir=str(workdir),
            protocol="finetune",
            finetune_steps=4,
            finetune_eval_every=2,
            finetune_lr=1e-3,
        )
    )
    sel = r["selection"]
    assert sel["steps_run"] == 4 and set(sel["val_macro_auroc_by_step"]) == {"2", "4"}
    assert sel["best_val_macro_auroc"] == max(sel["val_macro_auroc_by_step"].values())
    # The kept state is the best one: re-scoring val gives the selection's figure.
    assert r["val"]["macro_auroc"] == pytest.approx(sel["best_val_macro_auroc"], abs=1e-5)
    assert 0.0 <= r["test"]["macro_auroc"] <= 1.0


def test_random_init_without_workdir_and_compare(prepared_sample, pretrained, tmp_path):
    rand = evaluate(args(prepared_sample, init="random", config=str(TINY)))
    assert rand["init"] == "random" and rand["step"] is None
    assert np.isfinite(rand["test"]["macro_auroc"])
    pre = pretrained[2][-1]
    report.write(rand, tmp_path / "rand.json")
    report.write(pre, tmp_path / "pre.json")
    r = compare(tmp_path / "pre.json", tmp_path / "rand.json", num=200)
    assert 0.0 <= r["p_value"] <= 1.0 and r["num_records"] == 14
    assert r["delta_macro_auroc"] == pytest.approx(
        pre["test"]["macro_auroc"] - rand["test"]["macro_auroc"]
    )
    other = dict(rand, test_records=dict(rand["test_records"]))
    other["test_records"]["ids"] = ["x"] + rand["test_records"]["ids"][1:]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(CompareError, match="different test records"):
        compare(tmp_path / "pre.json", tmp_path / "other.json")
    with pytest.raises(SystemExit, match="error: the results were evaluated on different"):
        compare_main(["compare", str(tmp_path / "pre.json"), str(tmp_path / "other.json")])


def test_label_fraction_is_stratified_and_seeded(prepared_sample):
    manifest = pipeline.read_manifest(str(prepared_sample))
    for task, fraction in (("superdiagnostic", 0.1), ("diagnostic", 0.25)):
        classes = tasks.vocabulary(manifest, str(prepared_sample), task, "train")
        y = tasks.split_labels(str(prepared_sample), "train", task, manifest, classes).y
        a = tasks.stratified_fraction(y, fraction, seed=0)
        assert abs(len(a) - round(fraction * len(y))) <= len(classes)
        enough = y.sum(axis=0) >= 1 / fraction
        assert (y[a][:, enough].sum(axis=0) >= 1).all(), "a class with >= 1/F examples is missing"
        np.testing.assert_array_equal(a, tasks.stratified_fraction(y, fraction, seed=0))
        assert not np.array_equal(a, tasks.stratified_fraction(y, fraction, seed=1))


def test_single_label_task_drops_multilabel_records(prepared_sample):
    manifest = pipeline.read_manifest(str(prepared_sample))
    classes = tasks.vocabulary(manifest, str(prepared_sample), "superdiagnostic_single", "train")
    lab = tasks.split_labels(
        str(prepared_sample), "train", "superdiagnostic_single", manifest, classes
    )
    assert (lab.y.sum(axis=1) == 1).all()
    c = lab.counts
    assert c["dropped_multilabel"] > 0
    assert c["kept"] + c["dropped_multilabel"] + c["dropped_unlabeled"] == c["records"] == 159


def test_follow_evaluates_checkpoints_written_after_it_started(pretrained):
    _, steps, results = pretrained
    # It stops by itself after the run's final step, without waiting for the timeout.
    assert steps[-1] == 4 and [r["step"] for r in results] == steps
    assert all(np.isfinite(r["test"]["macro_auroc"]) for r in results)


def test_clear_errors(prepared_sample, workdir, tmp_path):
    proc = cli("--workdir", tmp_path, "--data", prepared_sample, "--task", "superdiagnostic")
    assert proc.returncode != 0 and "no checkpoints in" in proc.stderr
    assert str(tmp_path) in proc.stderr
    with pytest.raises(EvalError, match=r"split\(s\) \['nope'\].*available"):
        Evaluation(args(prepared_sample, workdir=str(workdir), splits=("train", "val", "nope")))
    with pytest.raises(tasks.TaskError, match="unknown task 'rythm'.*'rhythm'"):
        Evaluation(dataclasses.replace(args(prepared_sample, workdir=str(workdir)), task="rythm"))
    manifest = pipeline.read_manifest(str(prepared_sample))
    a = args(prepared_sample, workdir=str(workdir))
    with pytest.raises(EvalError, match="trained on 500 Hz.*--fs 500"):
        check_compatible(tiny(prepared_sample), 500, manifest, a)
    long_window = replace(tiny(prepared_sample), data={"window": 5000})
    with pytest.raises(EvalError, match="eval window \\(5000 samples\\) is longer"):
        check_compatible(long_window, 100, manifest, a)
    classes = tasks.vocabulary(manifest, str(prepared_sample), "all", "train")
    train = tasks.split_labels(str(prepared_sample), "train", "all", manifest, classes)
    tasks.require_all_classes(train, classes, "train", "all")  # the full split has them all
    few = tasks.subset(train, tasks.stratified_fraction(train.y, 0.05, seed=0))
    with pytest.raises(tasks.TaskError, match="no positive record in the 'train' split"):
        tasks.require_all_classes(few, classes, "train", "all")
