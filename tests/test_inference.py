"""Export -> load -> embed/predict: eval parity, prepare parity, devices, bad input, safety."""

import csv
import json
import pickle
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import grain
import jax
import numpy as np
import pytest
import wfdb

import acl_jax
from acl_jax import embed as embed_cli
from acl_jax import export as export_cli
from acl_jax import predict as predict_cli
from acl_jax.config import load_config
from acl_jax.data import pipeline, ptbxl
from acl_jax.data.record import decode
from acl_jax.eval import __main__ as eval_cli
from acl_jax.eval import features, probe, save
from acl_jax.inference import inputs
from acl_jax.inference.arrays import ModelFormatError
from acl_jax.prepare import PrepareArgs
from acl_jax.prepare import run as prepare
from acl_jax.train.checkpoint import load_pretrainer
from acl_jax.train.loop import replace, train
from acl_jax.train.step import make_mesh, place_model

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "ptbxl"
FIXTURES = REPO / "tests" / "fixtures"
TASK = "superdiagnostic"


@pytest.fixture(scope="module")
def workdir(prepared_sample, tmp_path_factory):
    """Two steps of the tiny config, narrowed as in test_eval (a checkpoint to export)."""
    cfg = replace(
        load_config(REPO / "configs" / "tiny.py"),
        data={"dir": str(prepared_sample), "batch_size": 16, "window": 200},
        model={"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16},
        optim={"warmup_steps": 1},
        train={"steps": 2, "ckpt_every": 2, "log_every": 1, "async_checkpoint": False},
    )
    out = tmp_path_factory.mktemp("infer_pretrain")
    train(cfg, out)
    return out


@pytest.fixture(scope="module")
def model_dir(workdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    assert export_cli.main(["--workdir", str(workdir), "--out", str(out)]) == 0
    return out


def split_records(data_dir, split):
    """Decoded prepared records of `split`, in split order."""
    source = grain.sources.ArrayRecordDataSource(pipeline.split_paths(str(data_dir), split))
    return [decode(source[i]) for i in range(len(source))]


def source_paths(ids):
    """PTB-XL record ids ("ptbxl/00042") -> the sample's .hea paths."""
    by_id = {r.id: r.path for r in ptbxl.list_records(SAMPLE)}
    return [by_id[i] + ".hea" for i in ids]


def eval_features(workdir, data_dir, split):
    """The eval binary's per-record features of a split (acl_jax.eval.features)."""
    model, cfg, _, _ = load_pretrainer(workdir)
    mesh = make_mesh()
    place_model(model.encoder, mesh)
    view = features.inference_view(model.encoder)
    return features.record_outputs(
        view, features.encoder_features, str(data_dir), split, cfg, mesh, batch_size=64
    )


def test_export_writes_a_self_contained_model_dir(model_dir, prepared_sample):
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == ["MODEL_CARD.md", "card.json", "encoder.npz", "model.json"]
    meta = json.loads((model_dir / "model.json").read_text())
    manifest = pipeline.read_manifest(str(prepared_sample))
    pre = meta["preprocessing"]
    assert pre["filters"]["fs"] == manifest["fs"] == 100
    assert pre["filters"]["highpass_hz"] == manifest["source"]["args"]["highpass_hz"] == 0.5
    assert pre["leads"] == manifest["leads"] and pre["window"] == 200 and pre["stride"] == 200
    card = json.loads((model_dir / "card.json").read_text())
    assert card["objective"] == "acl_ecg" and card["training"]["steps"] == 2
    assert card["data"]["license"].startswith("CC BY 4.0") and card["data"]["splits"]["test"] == 15
    with np.load(model_dir / "encoder.npz", allow_pickle=False) as npz:  # weights only
        assert card["encoder"]["num_params"] == sum(npz[k].size for k in npz.files)
        assert "lead_embed" in npz.files and not any("opt" in k for k in npz.files)
    assert "acl_ecg" in (model_dir / "MODEL_CARD.md").read_text()


def test_export_refusals(workdir, model_dir, tmp_path, capsys):
    """No manifest where the config says: one line asking for --data; an existing model dir is
    not overwritten without --overwrite."""
    argv = ["--workdir", str(workdir), "--out", str(tmp_path / "m")]
    assert export_cli.main([*argv, "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read the training data's manifest") and "--data" in err
    assert "\n" not in err and not (tmp_path / "m").exists()
    assert export_cli.main(["--workdir", str(workdir), "--out", str(model_dir)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_embed_equals_the_eval_binarys_features(model_dir, workdir, prepared_sample, tmp_path):
    want = eval_features(workdir, prepared_sample, "test")
    ids = [r["id"] for r in split_records(prepared_sample, "test")]
    paths = source_paths(ids)
    # eval's batch of 64 windows on 8 devices: 8 per device (same shapes, same bits)
    got = acl_jax.load(str(model_dir)).embed(paths, device_batch=8)
    assert got.ids == [Path(p).stem for p in paths] and not got.skipped
    np.testing.assert_array_equal(got.features, want)
    # The CLI writes the same rows plus the ids file.
    out = tmp_path / "x.npy"
    argv = ["--model", str(model_dir), "--input", *paths, "--out", str(out), "--device-batch=8"]
    assert embed_cli.main(argv) == 0
    np.testing.assert_array_equal(np.load(out), want)
    assert out.with_suffix(".records.txt").read_text().split() == got.ids


@pytest.mark.parametrize(
    "dataset,src,splits",
    [("cinc", FIXTURES / "cinc", "train=1.0"), ("wfdb", FIXTURES / "ludb", "train=1.0")],
)
def test_preprocessing_is_bit_identical_to_prepare(dataset, src, splits, tmp_path):
    """CinC .mat and LUDB 500 Hz WFDB records (resampled to 100 Hz) read by the inference path
    give exactly prepare's stored arrays."""
    from acl_jax.data.preprocess import PreprocessConfig

    out = tmp_path / "prep"
    m = prepare(PrepareArgs(dataset=dataset, src=str(src), out=str(out), splits=splits, workers=1))
    stored = split_records(out, "train")
    assert len(stored) >= 3
    pcfg = PreprocessConfig(fs=100)
    by_stem = {i.id: i for i in inputs.find_inputs([str(src)])}
    assert m["fs"] == 100
    for rec in stored:
        stem = rec["id"].split("/")[-1]
        got = inputs.load_record(by_stem[stem], pcfg, window=100, rpeaks=True)
        assert got.signal.dtype == np.int16
        np.testing.assert_array_equal(got.signal, rec["signal"])
        np.testing.assert_array_equal(got.lead_mask, rec["lead_mask"])
        np.testing.assert_array_equal(got.rpeaks, rec["rpeaks"])


def test_one_and_eight_devices_give_the_same_embeddings(model_dir):
    model = acl_jax.load(str(model_dir))
    paths = [str(p) for p in sorted((SAMPLE / "records100").rglob("*.hea"))[:20]]
    one = model.embed(paths, devices=jax.devices()[:1])
    eight = model.embed(paths, devices=jax.devices())
    assert len(jax.devices()) == 8 and one.ids == eight.ids
    np.testing.assert_array_equal(one.features, eight.features)


def _write_wfdb(folder, name, sig, names, fs=100):
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(names),
        sig_name=names,
        p_signal=sig,
        fmt=["16"] * len(names),
        adc_gain=[1000.0] * len(names),
        baseline=[0] * len(names),
        write_dir=str(folder),
    )


def test_bad_inputs_are_reported_and_the_rest_processed(model_dir, tmp_path, capsys):
    good = sorted((SAMPLE / "records100").rglob("*.hea"))[:2]
    d = tmp_path / "in"
    d.mkdir()
    for hea in good:
        for f in hea.parent.glob(hea.stem + ".*"):
            shutil.copy(f, d)
    x = np.asarray(wfdb.rdrecord(str(good[0].with_suffix(""))).p_signal)  # (1000, 12) mV
    (d / "broken.hea").write_text("this is not a header\n")
    _write_wfdb(d, "noleads", x[:, :2], ["ECG1", "ECG2"])
    _write_wfdb(d, "short", x[:150], list(wfdb.rdheader(str(good[0].with_suffix(""))).sig_name))
    nan = x.copy()
    nan[10:20, 3] = np.nan
    np.save(d / "nan.npy", nan.T)
    out = tmp_path / "x.npy"
    argv = ["--model", str(model_dir), "--input", str(d), "--out", str(out), "--progress=false"]
    leads = "--leads=I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"
    assert embed_cli.main([*argv, "--fs", "100", leads]) == 0
    err = capsys.readouterr().err
    assert np.load(out).shape == (2, 16)
    assert out.with_suffix(".records.txt").read_text().split() == [p.stem for p in good]
    for rid, why in [
        ("broken", "broken.hea"),
        ("noleads", "wrong lead set"),
        ("short", "too short"),
        ("nan", "NaN/inf samples in leads"),
    ]:
        line = next(ln for ln in err.splitlines() if ln.startswith(f"skipped {rid}:"))
        assert why in line
    # Nothing usable: exit 1 with one line saying so.
    for hea in good:
        for f in d.glob(hea.stem + ".*"):
            f.unlink()
    assert embed_cli.main([*argv, "--fs", "100", leads]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no record under") and len(err) == 5


def test_absent_leads_are_masked_with_one_warning(model_dir, tmp_path, capsys):
    hea = sorted((SAMPLE / "records100").rglob("*.hea"))[0]
    x = np.asarray(wfdb.rdrecord(str(hea.with_suffix(""))).p_signal)
    for i in range(3):
        np.save(tmp_path / f"r{i}.npy", x[:, :3].T)  # leads I, II, III only
    out = tmp_path / "x.npy"
    argv = ["--model", str(model_dir), "--input", str(tmp_path), "--out", str(out)]
    assert embed_cli.main([*argv, "--fs", "100", "--leads", "I,II,III"]) == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "absent leads" in ln]
    assert len(warnings) == 1 and "aVR (3 of 3 records)" in warnings[0] and "V6" in warnings[0]
    rec = inputs.load_record(
        inputs.find_inputs([str(tmp_path / "r0.npy")])[0],
        acl_jax.load(str(model_dir)).preprocess,
        window=200,
        rpeaks=False,
        npy=inputs.NpySpec(100, ("I", "II", "III")),
    )
    assert rec.lead_mask.tolist() == [1, 1, 1] + [0] * 9 and not rec.signal[3:].any()


class Payload:
    """Unpickling this creates the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_tampered_weights_are_refused_not_executed(model_dir, head_model_dir, tmp_path):
    marker = tmp_path / "pwned"
    cases = {
        "pickle": lambda p: p.write_bytes(pickle.dumps(Payload(marker))),
        "object_array": lambda p: np.savez(p, weight=np.array([Payload(marker)], dtype=object)),
    }
    for source, weights in [(model_dir, "encoder.npz"), (head_model_dir, "classifier.npz")]:
        for name, tamper in cases.items():
            bad = tmp_path / f"{weights}_{name}"
            shutil.copytree(source, bad)
            tamper(bad / weights)
            with pytest.raises(ModelFormatError, match=f"{weights} was refused") as e:
                acl_jax.load(str(bad))
            assert "\n" not in str(e.value)
            assert not marker.exists(), f"{weights} {name}: the payload ran"
    # The payload is live: unpickling it (what allow_pickle=True would do) runs it.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.exists()
    # A weight of the wrong shape is named.
    bad = tmp_path / "shape"
    shutil.copytree(model_dir, bad)
    with np.load(model_dir / "encoder.npz") as npz:
        arrays = dict(npz)
    arrays["lead_embed"] = arrays["lead_embed"][:, :3]
    np.savez(bad / "encoder.npz", **arrays)
    with pytest.raises(ModelFormatError, match="'lead_embed' is float32\\[12, 3\\]"):
        acl_jax.load(str(bad))
    assert zipfile.is_zipfile(model_dir / "encoder.npz")


@pytest.fixture(scope="module")
def saved_head(workdir, prepared_sample, tmp_path_factory):
    """`eval --protocol linear --save DIR --out R.json` on the exported checkpoint:
    (DIR, the eval result)."""
    tmp = tmp_path_factory.mktemp("saved_head")
    head_dir, out = tmp / "head", tmp / "lin.json"
    argv = ["--workdir", str(workdir), "--data", str(prepared_sample), "--task", TASK]
    argv += ["--bootstrap=10", "--save", str(head_dir), "--out", str(out)]
    assert eval_cli.main(argv) == 0
    return head_dir, json.loads(out.read_text()), argv


@pytest.fixture(scope="module")
def head_model_dir(workdir, saved_head, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_head") / "with_head"
    notes = out.parent / "notes.txt"
    notes.write_text("Folds 9 and 10 were never used.\n\nNot for clinical use.\n")
    argv = ["--workdir", str(workdir), "--out", str(out), "--classifier", str(saved_head[0])]
    assert export_cli.main([*argv, "--notes", str(notes)]) == 0
    return out


def test_saved_probe_predicts_evals_test_scores(
    head_model_dir, saved_head, model_dir, workdir, tmp_path, capsys
):
    """eval --save -> export --classifier -> load().predict on the test split's raw records
    gives the eval run's per-record test scores; the predict CLI writes the same."""
    head_dir, result, argv = saved_head
    meta = json.loads((head_dir / "classifier.json").read_text())
    assert meta["labels"] == result["classes"] and meta["activation"] == "sigmoid"
    assert meta["step"] == result["step"] and meta["protocol"] == "linear"
    assert meta["eval"][0]["command"] == shlex.join(["python", "-m", "acl_jax.eval", *argv])
    assert all(0.0 <= t <= 1.0 for t in meta["thresholds"])
    ids = result["test_records"]["ids"]
    paths = source_paths(ids)
    model = acl_jax.load(str(head_model_dir))
    got = model.predict(paths, device_batch=8)
    want = np.asarray(result["test_records"]["scores"], np.float32)
    assert got.ids == [Path(p).stem for p in paths] and got.labels == result["classes"]
    np.testing.assert_allclose(got.probabilities, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.decisions, want >= np.float32(meta["thresholds"]))
    card = json.loads((head_model_dir / "card.json").read_text())
    assert card["classifier"]["task"] == TASK and card["eval"] == meta["eval"]
    entry = card["eval"][0]
    # The card says where the head was fitted, selected and tested, with 95% intervals.
    assert entry["splits"] == {"train": "train", "val": "val", "test": "test"}
    assert entry["data_splits"] == "train=1+2+3+4,val=5,test=6" and not entry["test_is_val"]
    lo, hi = entry["test"]["macro_auroc_ci"]
    assert lo <= entry["test"]["macro_auroc"] == result["test"]["macro_auroc"] <= hi
    assert entry["val"]["macro_auroc"] == result["val"]["macro_auroc"]
    assert card["notes"] == ["Folds 9 and 10 were never used.", "Not for clinical use."]
    text = (head_model_dir / "MODEL_CARD.md").read_text()
    assert meta["eval"][0]["command"] in text and f"[{lo:.4f}, {hi:.4f}]" in text
    assert "## Notes\n- Folds 9 and 10 were never used." in text
    # The predict CLI writes the same probabilities.
    out = tmp_path / "preds.csv"
    cli_argv = ["--input", *paths, "--out", str(out), "--device-batch=8"]
    assert predict_cli.main(["--model", str(head_model_dir), *cli_argv]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["record", *result["classes"]] and [r[0] for r in rows[1:]] == got.ids
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], float), want, atol=1e-6)
    # A head fitted on another step's features is refused by export.
    capsys.readouterr()
    bad = tmp_path / "other_step"
    shutil.copytree(head_dir, bad)
    (bad / "classifier.json").write_text(json.dumps({**meta, "step": 1}))
    assert (
        export_cli.main(
            ["--workdir", str(workdir), "--out", str(tmp_path / "m"), "--classifier", str(bad)]
        )
        == 1
    )
    assert "pass --step 1" in capsys.readouterr().err
    # Without a head: one line saying how to get one.
    assert predict_cli.main(["--model", str(model_dir), *cli_argv]) == 1
    assert "export it with python -m acl_jax.export --classifier" in capsys.readouterr().err


def test_saved_finetune_predicts_evals_test_scores(workdir, prepared_sample, model_dir, tmp_path):
    """eval --protocol finetune --save: the fine-tuned encoder travels with its head; the
    exported model's predictions are eval's test scores (window probabilities averaged)."""
    head_dir, out, model = tmp_path / "ft", tmp_path / "ft.json", tmp_path / "model"
    argv = ["--workdir", str(workdir), "--data", str(prepared_sample), "--task", TASK]
    argv += ["--protocol=finetune", "--finetune-steps=2", "--finetune-eval-every=1"]
    argv += ["--finetune-lr=1e-2", "--bootstrap=10", "--save", str(head_dir), "--out", str(out)]
    assert eval_cli.main(argv) == 0
    result = json.loads(out.read_text())
    meta = json.loads((head_dir / "classifier.json").read_text())
    assert meta["aggregate"] == "probabilities" and meta["protocol"] == "finetune"
    assert (
        export_cli.main(
            ["--workdir", str(workdir), "--out", str(model), "--classifier", str(head_dir)]
        )
        == 0
    )
    with np.load(head_dir / "encoder.npz") as tuned, np.load(model / "encoder.npz") as got:
        with np.load(model_dir / "encoder.npz") as pretrained:
            assert sorted(got.files) == sorted(tuned.files) == sorted(pretrained.files)
            for k in got.files:
                np.testing.assert_array_equal(got[k], tuned[k])
            assert any(not np.array_equal(got[k], pretrained[k]) for k in got.files)
    assert "fine-tuned by eval" in (model / "MODEL_CARD.md").read_text()
    ids = result["test_records"]["ids"]
    got = acl_jax.load(str(model)).predict(source_paths(ids), device_batch=8)
    want = np.asarray(result["test_records"]["scores"], np.float32)
    np.testing.assert_allclose(got.probabilities, want, rtol=0, atol=1e-5)


def test_save_is_refused_where_it_cannot_store_the_classifier(workdir, prepared_sample, capsys):
    base = ["--workdir", str(workdir), "--data", str(prepared_sample), "--task", TASK]
    for extra, says in [
        (["--init", "random"], "--save needs --init pretrained"),
        (["--follow"], "drop --follow"),
    ]:
        assert eval_cli.main([*base, *extra, "--save", "/nonexistent/x"]) != 0
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err, err


def test_two_class_and_multinomial_probes_are_reproduced_by_the_head():
    """probe_head(probe).probabilities == probe.scores for every kind of probe."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    for y, single in [
        (np.eye(2)[rng.integers(0, 2, 40)], True),
        (np.eye(3)[rng.integers(0, 3, 40)], True),
        ((rng.random((40, 3)) < 0.5).astype(float), False),
    ]:
        (p,), _ = probe.fit_grid(x, y, single, grid=(1.0,))
        head = save.probe_head(p, ["a", "b", "c"][: y.shape[1]], [0.5] * y.shape[1], {})
        assert head.activation == ("softmax" if single else "sigmoid")
        np.testing.assert_allclose(head.probabilities(x), p.scores(x), rtol=0, atol=1e-6)
    # Thresholds maximize val F1 per class; ties keep the larger threshold.
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.6, 0.2], [0.6, 0.3], [0.1, 0.4]])
    assert save.f1_thresholds(y, s) == [0.6, 0.5]


def test_load_names_and_paths():
    with pytest.raises(ModelFormatError, match="bundled models are .*acl_ecg_ptbxl100"):
        acl_jax.load("no-such-model")
    with pytest.raises(ModelFormatError, match="not a model directory"):
        acl_jax.load(str(SAMPLE))
    code = "import sys, acl_jax; assert 'jax' not in sys.modules, 'import acl_jax pulls in jax'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
