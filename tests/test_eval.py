"""The evaluation binary end to end on the prepared real sample and tiny pretraining runs
(ACL-ECG and CLEAR), plus LUDB wave segmentation on the three fixture records."""

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from tiny_run import tiny

import acl_jax
from acl_jax.compare import CompareError, compare
from acl_jax.compare import main as compare_main
from acl_jax.data import pipeline, ptbxl
from acl_jax.eval import (
    EvalArgs,
    EvalError,
    Evaluation,
    SegmentationEvaluation,
    check_compatible,
    evaluate,
    follow,
    probe,
    report,
    tasks,
)
from acl_jax.eval.args import check_common
from acl_jax.eval.early_stopping import optimizer_for
from acl_jax.eval.finetune import build_classifier, start_head_from_probe
from acl_jax.eval.ludb_windows import (
    LudbDataError,
    load_record,
    make_windows,
    nearest_labels,
    split_records,
    stitch,
)
from acl_jax.eval.metrics import WAVES
from acl_jax.eval.save import probe_head
from acl_jax.export import main as export_main
from acl_jax.inference.arrays import module_arrays
from acl_jax.models import ECGEncoder, ResNet1d, heads
from acl_jax.train.checkpoint import load_pretrainer
from acl_jax.train.loop import replace, train

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.py"
LUDB = REPO / "tests" / "fixtures" / "ludb"
SAMPLE = REPO / "data" / "sample" / "ptbxl"


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
    kw = {"task": "superdiagnostic", "bootstrap": 100, "batch_size": 64, **kw}
    return EvalArgs(data=str(data), **kw)


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


def test_finetune_recipes_lp_ft_and_a_lower_encoder_rate(prepared_sample, workdir):
    """--finetune-head-init linear (LP-FT) and --finetune-encoder-lr-scale, end to end; the
    head starts exactly as the probe; each parameter group moves at its own rate; nonsense is
    refused in one line."""
    r = evaluate(
        args(
            prepared_sample,
            workdir=str(workdir),
            protocol="finetune",
            finetune_steps=2,
            finetune_eval_every=2,
            finetune_lr=1e-3,
            finetune_head_init="linear",
            finetune_encoder_lr_scale=0.1,
        )
    )
    start = r["selection"]["head_init"]
    assert start["from"] == "linear probe" and f"{start['C']:g}" in start["val_macro_auroc_by_C"]
    assert r["args"]["finetune_encoder_lr_scale"] == 0.1 and np.isfinite(r["test"]["macro_auroc"])
    # The head starts as the probe: the same probabilities on any features.
    encoder = load_pretrainer(str(workdir))[0].encoder
    x = np.random.default_rng(0).normal(size=(30, encoder.dim))
    for y, single in [(np.eye(2)[np.arange(30) % 2], True), (np.eye(3)[np.arange(30) % 3], False)]:
        (fitted,), _ = probe.fit_grid(x, y, single, grid=(0.5,))
        clf = build_classifier(encoder, y.shape[1], single, seed=0)
        c = y.shape[1]
        start_head_from_probe(clf, probe_head(fitted, list("abc")[:c], [0.5] * c, {}))
        got = heads.class_probabilities(clf.head(x.astype(np.float32)), single)
        np.testing.assert_allclose(got, fitted.scores(x), rtol=0, atol=1e-5)
    # AdamW's first step moves every parameter by about its rate: the encoder's is 0.1 x.
    clf = build_classifier(encoder, 2, False, seed=0)
    before = jax.tree.map(np.array, nnx.state(clf, nnx.Param))
    opt = nnx.Optimizer(clf, optimizer_for(1e-3, 0.1), wrt=nnx.Param)
    opt.update(clf, jax.tree.map(np.ones_like, before))
    after = nnx.state(clf, nnx.Param)
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(b) - a).max(), before, after)
    enc, head = (max(jax.tree.leaves(moved[k])) for k in ("encoder", "head"))
    assert enc == pytest.approx(1e-4, rel=0.05) and head == pytest.approx(1e-3, rel=0.05)
    for kw, says in [
        ({"finetune_encoder_lr_scale": 0.0}, "must be > 0"),
        ({"finetune_encoder_lr_scale": 0.1}, "does not train under --protocol linear"),
        ({"protocol": "hug", "finetune_head_init": "linear"}, "needs --protocol finetune"),
    ]:
        with pytest.raises(EvalError, match=says):
            check_common(args(prepared_sample, workdir=str(workdir), **kw))


def test_random_init_without_workdir_and_compare(prepared_sample, pretrained, tmp_path, capsys):
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
    capsys.readouterr()
    assert compare_main([str(tmp_path / "pre.json"), str(tmp_path / "other.json")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: the results were evaluated on different")


def test_label_fraction_is_stratified_and_seeded(prepared_sample):
    manifest = pipeline.read_manifest(str(prepared_sample))
    for task, fraction in (("superdiagnostic", 0.1), ("diagnostic", 0.25)):
        classes = tasks.vocabulary(manifest, str(prepared_sample), task, "train")
        y = tasks.split_labels(str(prepared_sample), "train", task, manifest, classes).y
        a = tasks.stratified_fraction(y, fraction, seed=0)
        assert abs(len(a) - round(fraction * len(y))) <= len(classes)
        enough = y.sum(axis=0) >= 1 / fraction
        assert (y[a][:, enough].sum(axis=0) >= 1).all(), "a class with >= 1/F examples is missing"
        present = y.sum(axis=0) >= 1
        assert (y[a][:, present].sum(axis=0) >= 1).all(), "a rare class vanished from the subset"
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


def test_test_equal_to_val_is_reported_as_selection_split(prepared_sample, pretrained):
    # A model to ship: fitted on train, selected on val and reported on val, said so plainly.
    workdir, _, _ = pretrained
    run = Evaluation(args(prepared_sample, workdir=str(workdir), splits=("train", "val", "val")))
    run.select()
    result = run.evaluate_test()
    assert result["test_is_val"] and result["test"]["num_records"] == result["val"]["num_records"]
    assert result["test"]["macro_auroc"] == pytest.approx(result["val"]["macro_auroc"], abs=1e-6)
    assert "selection-split figures (optimistic)" in report.markdown(result)
    with pytest.raises(EvalError, match="train split 'train' cannot also be val or test"):
        Evaluation(args(prepared_sample, workdir=str(workdir), splits=("train", "train", "val")))


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
    few = tasks.subset(train, np.arange(3))  # three records cannot hold all 'all' classes
    with pytest.raises(tasks.TaskError, match="no positive record in the 'train' split"):
        tasks.require_all_classes(few, classes, "train", "all")


@pytest.fixture(scope="module")
def clear_workdir(prepared_sample, tmp_path_factory):
    """A tiny CLEAR pretraining run (heartbeat-token encoder that needs R-peaks)."""
    out = tmp_path_factory.mktemp("clear")
    cfg = replace(
        tiny(prepared_sample, steps=2, ckpt_every=2),
        objective="clear",
        data={"max_beats": 4},
        augment={"ops": ()},
        clear={"d_model": 16, "depth": 1, "heads": 2, "decoder_dim": 16},
    )
    train(cfg, out)
    return out


def test_clear_checkpoint_in_linear_finetune_and_frozen_hug(
    prepared_sample, clear_workdir, tmp_path
):
    lin = evaluate(args(prepared_sample, workdir=str(clear_workdir), bootstrap=50))
    assert lin["config"]["objective"] == "clear" and np.isfinite(lin["test"]["macro_auroc"])
    ft = evaluate(
        args(
            prepared_sample,
            workdir=str(clear_workdir),
            protocol="finetune",
            finetune_steps=1,
            finetune_eval_every=1,
            bootstrap=50,
        )
    )
    assert np.isfinite(ft["test"]["macro_auroc"]) and ft["selection"]["steps_run"] == 1
    # A learning rate this large makes AdamW's weight decay visible, had it reached the encoder.
    # eval --save stores what HUG trained: the (frozen) encoder and the pooling head; exported,
    # the model's predictions on the source files are eval's test scores.
    head_dir, model_dir = tmp_path / "hug_head", tmp_path / "hug_model"
    hug = evaluate(
        args(
            prepared_sample,
            workdir=str(clear_workdir),
            protocol="hug",
            hug_freeze_encoder=True,
            head_lr=0.5,
            finetune_steps=2,
            finetune_eval_every=2,
            bootstrap=50,
        ),
        save=str(head_dir),
        command="python -m acl_jax.eval --protocol hug ...",
    )
    assert hug["protocol"] == "hug" and hug["selection"]["steps_run"] == 2
    r = json.loads(report.write(hug, tmp_path / "hug.json")["json"].read_text())
    assert 0.0 <= r["test"]["macro_auroc"] <= 1.0 and r["args"]["hug_freeze_encoder"] is True
    checkpoint = module_arrays(load_pretrainer(str(clear_workdir))[0].encoder)
    with np.load(head_dir / "encoder.npz") as saved:
        assert sorted(saved.files) == sorted(checkpoint)
        for k in saved.files:  # frozen: not moved by the gradient nor by weight decay
            np.testing.assert_array_equal(saved[k], checkpoint[k])
    meta = json.loads((head_dir / "classifier.json").read_text())
    assert meta["kind"] == "hug" and meta["hug"]["pool"] == "attention"
    with np.load(head_dir / "classifier.npz") as head:
        assert head["out/kernel"].shape == (4 * 16, len(hug["classes"]))
        assert np.abs(head["out/kernel"]).max() > 0
    argv = ["--workdir", str(clear_workdir), "--out", str(model_dir), "--classifier", str(head_dir)]
    assert export_main(argv) == 0
    by_id = {rec.id: rec.path + ".hea" for rec in ptbxl.list_records(SAMPLE)}
    ids = hug["test_records"]["ids"]
    got = acl_jax.load(str(model_dir)).predict([by_id[i] for i in ids], device_batch=8)
    assert got.ids == [Path(by_id[i]).stem for i in ids] and got.labels == hug["classes"]
    want = np.asarray(hug["test_records"]["scores"], np.float32)
    np.testing.assert_allclose(got.probabilities, want, rtol=0, atol=1e-5)


def test_hug_needs_a_clear_checkpoint_and_segmentation_a_feature_map(
    prepared_sample, workdir, clear_workdir
):
    with pytest.raises(
        EvalError, match="'acl_ecg' gives encoder ECGEncoder: use a `clear` checkpoint"
    ):
        Evaluation(args(prepared_sample, workdir=str(workdir), protocol="hug"))
    seg = EvalArgs(data=str(LUDB), task="ludb_segmentation", workdir=str(clear_workdir))
    with pytest.raises(EvalError, match="features_map.*'clear' gives encoder BeatTransformer"):
        SegmentationEvaluation(seg)
    with pytest.raises(EvalError, match="supports --protocol linear or finetune"):
        SegmentationEvaluation(dataclasses.replace(seg, protocol="hug"))
    with pytest.raises(EvalError, match="holds no LUDB record.*not prepared shards"):
        SegmentationEvaluation(dataclasses.replace(seg, data=str(prepared_sample)))


def test_ludb_segmentation_scores_dice_on_held_out_records(workdir, tmp_path):
    a = EvalArgs(
        data=str(LUDB),
        task="ludb_segmentation",
        workdir=str(workdir),
        batch_size=16,
        finetune_steps=2,
        finetune_eval_every=2,
        bootstrap=50,
    )
    r = evaluate(a)
    records = r["records"]
    assert [len(records[s]) for s in ("train", "val", "test")] == [1, 1, 1]
    assert sorted(records["train"] + records["val"] + records["test"]) == ["1", "38", "8"]
    assert r["fs"] == 100 and r["window"] == 200 and r["target_lead"] == "II"
    for split in ("val", "test"):
        dice = r[split]["dice"]
        assert set(dice) == set(WAVES)
        assert all(np.isnan(d) or 0.0 <= d <= 1.0 for d in dice.values())
        assert np.isfinite(dice["QRS"]) and np.isfinite(dice["T"])  # every record has both
    # The reported Dice is the NumPy definition on the (single) test record's label arrays.
    ex = r["example"]
    true, pred = np.asarray(ex["true"]), np.asarray(ex["pred"])
    assert ex["id"] == records["test"][0] and true.shape == pred.shape
    for k, wave in enumerate(WAVES, start=1):
        a_, b_ = true == k, pred == k
        if a_.sum() + b_.sum():
            expected = 2 * np.sum(a_ & b_) / (a_.sum() + b_.sum())
            assert r["test"]["dice"][wave] == pytest.approx(expected)
    paths = report.write(r, tmp_path / "seg.json")
    md = paths["md"].read_text()
    assert md.startswith("### ludb_segmentation: linear") and "| test | 1 |" in md
    assert paths["png"].name == "seg_seg.png" and paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert json.loads(paths["json"].read_text())["test_records"]["ids"] == records["test"]
    same = compare(paths["json"], paths["json"], num=50)
    assert same["metric"] == "mean_dice" and same["delta"] == 0 and same["p_value"] == 1.0
    other = json.loads(paths["json"].read_text())
    other["test_records"]["counts"][0][1][2] += 1  # one more reference QRS sample
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(CompareError, match="different reference labels"):
        compare(paths["json"], tmp_path / "other.json")


def test_ludb_records_split_resample_window_and_stitch():
    names = [str(i) for i in range(1, 41)]
    train_, val, test = split_records(names, (0.6, 0.2, 0.2), seed=0)
    assert (len(train_), len(val), len(test)) == (24, 8, 8)
    assert sorted(train_ + val + test, key=int) == names
    assert split_records(names, (0.6, 0.2, 0.2), seed=0) == (train_, val, test)
    assert split_records(names, (0.6, 0.2, 0.2), seed=1)[2] != test
    with pytest.raises(LudbDataError, match="summing to 1"):
        split_records(names, (0.6, 0.2, 0.3), seed=0)
    with pytest.raises(LudbDataError, match="2 records cannot give"):
        split_records(["1", "2"], (0.6, 0.2, 0.2), seed=0)
    src = np.repeat(np.array([0, 1, 0, 2, 3]), 5)  # 25 samples at 500 Hz
    np.testing.assert_array_equal(nearest_labels(src, 500, 100, 5), [0, 1, 0, 2, 3])
    rec = load_record(str(LUDB), "1", 100)
    # Annotated span [583, 4053) at 500 Hz -> [116, 811) at 100 Hz.
    assert rec.signal.shape == (12, 695) and rec.labels.shape == (695,)
    assert set(np.unique(rec.labels)) == {0, 1, 2, 3} and rec.lead_mask.sum() == 12
    w = make_windows([rec], 200)
    assert w.signal.shape[1:] == (12, 200) and w.valid.all()  # 695 > 200: no padding
    onehot = np.eye(4)[w.labels]
    np.testing.assert_array_equal(stitch(onehot, w, [695])[0], rec.labels)
    long = make_windows([rec], 1000)  # longer than the span: one zero-padded window
    assert long.signal.shape[0] == 1 and long.valid.sum() == 695
    np.testing.assert_array_equal(stitch(np.eye(4)[long.labels], long, [695])[0], rec.labels)


def test_feature_maps_pool_to_the_encoders_features():
    from acl_jax.config import ModelConfig

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 80)).astype(np.float32)
    lead_mask = np.ones((3, 12), np.float32)
    lead_mask[0, 4] = 0.0
    net = nnx.view(ResNet1d(12, (8, 16), (1, 1), 7, rngs=nnx.Rngs(0)), use_running_average=True)
    fmap = net.features_map(x)
    assert fmap.shape == (3, 80 // 8, 16)
    np.testing.assert_allclose(fmap.mean(axis=1), net(x), rtol=1e-5, atol=1e-6)
    for lead_wise in (True, False):
        cfg = ModelConfig(widths=(8, 16), blocks=(1, 1), lead_wise=lead_wise)
        enc = nnx.view(ECGEncoder(cfg, rngs=nnx.Rngs(1)), use_running_average=True)
        fmap = enc.features_map(x, lead_mask)
        assert fmap.shape == (3, 10, 16)
        if lead_wise:  # the mean over present leads: its time mean is the global feature
            np.testing.assert_allclose(
                fmap.mean(axis=1), enc(x, lead_mask).global_, rtol=1e-5, atol=1e-6
            )
        junk = x.copy()
        junk[0, 4] = 1e3  # an absent lead never reaches the map
        np.testing.assert_allclose(enc.features_map(junk, lead_mask), fmap, rtol=1e-6)
