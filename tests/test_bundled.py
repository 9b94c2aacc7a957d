"""The bundled model acl_ecg_ptbxl100 (acl_jax/models_zoo, built by launch/bundled_model.sh):
small, arrays only, a card that states its data and figures. Its predictions, from a wheel
outside the checkout: tests/test_wheel.py."""

import json

import numpy as np

from acl_jax import resources
from acl_jax.inference.model import ZOO, bundled_names

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
