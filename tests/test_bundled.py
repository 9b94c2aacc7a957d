"""The bundled model acl_ecg_ptbxl100 (acl_jax/models_zoo, built by launch/bundled_model.sh):
small, arrays only, a card that states its data and figures, and sane predictions."""

import csv
import json

import numpy as np
import pytest

import acl_jax
from acl_jax import resources
from acl_jax.data import ptbxl
from acl_jax.eval.metrics import macro_metrics
from acl_jax.inference.model import ZOO, bundled_names
from acl_jax.leads import LEADS
from acl_jax.predict import main as predict_cli

NAME = "acl_ecg_ptbxl100"
SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]
SAMPLE = resources.sample_dir() / "ptbxl"


def test_package_data_is_small_and_holds_no_code():
    assert NAME in bundled_names()
    files = sorted((ZOO / NAME).iterdir())
    assert {f.suffix for f in files} <= {".json", ".npz", ".md"}
    assert sum(f.stat().st_size for f in files) < 5 * 2**20
    for f in files:
        if f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as npz:  # a pickle would raise here
                assert all(npz[k].dtype != object for k in npz.files)


def test_card_states_data_folds_and_figures():
    card = json.loads((ZOO / NAME / "card.json").read_text())
    assert card["objective"] == "acl_ecg" and card["data"]["license"].startswith("CC BY 4.0")
    assert card["data"]["fold_spec"] == "train=1+2+3+4+5+6+7+8"
    assert any("folds 9 and 10 were never read" in n for n in card["notes"])
    assert card["classifier"]["labels"] == SUPERCLASSES
    ship, *others = card["eval"]  # the shipped head's own eval first, then the --results
    selection = [e for e in others if e["test_is_val"]]
    dev = [e for e in others if not e["test_is_val"]]
    for e in (ship, *selection):  # fitted on folds 1-7, selected (and reported) on fold 8
        assert e["data_splits"] == "train=1+2+3+4+5+6+7,val=8" and e["splits"]["test"] == "val"
    assert ship["protocol"] == card["classifier"]["protocol"] == "finetune"
    lo, hi = ship["test"]["macro_auroc_ci"]
    assert 0.5 < lo <= ship["test"]["macro_auroc"] <= hi
    # The shipped recipe is the best of the candidates on fold 8 (selection on val only).
    assert ship["val"]["macro_auroc"] >= max(e["val"]["macro_auroc"] for e in selection)
    assert (
        {e["protocol"] for e in selection} == {e["protocol"] for e in dev} == {"linear", "finetune"}
    )
    for e in dev:  # the held-out estimate: fitted on 1-6, selected on 7, tested once on 8
        assert (
            e["data_splits"] == "train=1+2+3+4+5+6,val=7,test=8" and e["splits"]["test"] == "test"
        )
    text = (ZOO / NAME / "MODEL_CARD.md").read_text()
    assert "val = test (the selection split)" in text and ship["command"] in text


@pytest.mark.slow
def test_predicts_the_bundled_sample_from_any_directory(tmp_path, monkeypatch):
    """The sample's 189 records (10 s, 100 Hz WFDB), from a directory that is not the checkout.
    Most are in the classifier's training folds, so the AUROC guards the package (a broken
    export scores about 0.5); it is not a figure of merit (the card has those)."""
    records = {r.path.split("/")[-1]: r for r in ptbxl.list_records(SAMPLE)}
    monkeypatch.chdir(tmp_path)
    argv = ["--model", NAME, "--input", str(SAMPLE / "records100"), "--out", "p.csv"]
    assert predict_cli(argv) == 0
    rows = list(csv.reader(open("p.csv")))
    assert rows[0] == ["record", *SUPERCLASSES] and sorted(r[0] for r in rows[1:]) == sorted(
        records
    )
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32)
    y = np.array(
        [[c in records[r[0]].labels["superdiagnostic"] for c in SUPERCLASSES] for r in rows[1:]]
    )
    assert macro_metrics(y, probs, SUPERCLASSES)["macro_auroc"] > 0.8
    model = acl_jax.load(NAME)  # the same again through the API: deterministic
    again = model.predict([records[r[0]].path + ".hea" for r in rows[1:]])
    np.testing.assert_allclose(again.probabilities, probs, rtol=0, atol=1e-6)  # CSV rounding
    assert model.meta["preprocessing"]["leads"] == list(LEADS)
