"""Split-spec parsing, fold and fractional patient-level assignment, disjointness check."""

import pytest

from acl_jax.data.sources import SourceRecord
from acl_jax.data.splits import (
    assert_patient_disjoint,
    assign_splits,
    count_patients,
    parse_splits,
)


def _recs(n_patients: int, per_patient: int = 3, folds: int = 0) -> list[SourceRecord]:
    out = []
    for p in range(n_patients):
        for j in range(per_patient):
            fold = (p % folds) + 1 if folds else -1
            out.append(
                SourceRecord(id=f"x/{p:04d}-{j}", patient=str(p), dataset="x", path="", fold=fold)
            )
    return out


def test_parse_fold_specs():
    spec = parse_splits("train=1-8,val=9,test=10")
    assert spec.names == ("train", "val", "test")
    assert dict(spec.folds)["train"] == frozenset(range(1, 9))
    spec = parse_splits("a=1,3,5;b=2")
    assert dict(spec.folds) == {"a": frozenset({1, 3, 5}), "b": frozenset({2})}
    # Equivalent spellings normalize to the same canonical string (stored in the manifest).
    assert parse_splits("a=1-3").canonical() == parse_splits("a=3,1,2").canonical()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("train=1-4,val=4", "fold 4 is in both"),
        ("train=0.8,val=2", "mixes folds and fractions"),
        ("train=0.8,val=0.3", "sum to 1.1"),
        ("train=5-2", "reversed"),
        ("train=1-x", "not a fold number"),
        ("1-8", "expected 'name=...'"),
        ("train=1,train=2", "given twice"),
        ("tr ain=1", "bad split name"),
        ("", "names no split"),
    ],
)
def test_parse_errors_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_splits(spec)


def test_fold_assignment_and_unassigned():
    recs = _recs(20, per_patient=2, folds=10)
    by_split, unassigned = assign_splits(recs, parse_splits("train=1-4,val=5,test=6"))
    assert {r.fold for r in by_split["train"]} == {1, 2, 3, 4}
    assert {r.fold for r in by_split["test"]} == {6}
    assert {r.fold for r in unassigned} == {7, 8, 9, 10}
    assert len(unassigned) + sum(map(len, by_split.values())) == len(recs)
    assert [r.id for r in by_split["train"]] == sorted(r.id for r in by_split["train"])


def test_fold_spec_on_foldless_data_is_refused():
    with pytest.raises(ValueError, match="no folds"):
        assign_splits(_recs(5), parse_splits("train=1-8,val=9"))


def test_fraction_split_is_patient_level_seeded_and_order_free():
    recs = _recs(200)
    spec = parse_splits("train=0.8,val=0.1,test=0.1")
    by_split, unassigned = assign_splits(recs, spec, seed=3)
    assert not unassigned
    assert [count_patients(by_split[k]) for k in ("train", "val", "test")] == [160, 20, 20]
    assert_patient_disjoint(by_split)
    # Input order does not matter; the seed does.
    again, _ = assign_splits(list(reversed(recs)), spec, seed=3)
    assert {k: [r.id for r in v] for k, v in again.items()} == {
        k: [r.id for r in v] for k, v in by_split.items()
    }
    other, _ = assign_splits(recs, spec, seed=4)
    assert [r.id for r in other["val"]] != [r.id for r in by_split["val"]]


def test_fraction_split_records_without_patient_are_own_patients():
    recs = [SourceRecord(id=f"c/{i}", patient="", dataset="c", path="") for i in range(10)]
    by_split, unassigned = assign_splits(recs, parse_splits("a=0.5,b=0.3"), seed=0)
    assert [len(by_split["a"]), len(by_split["b"]), len(unassigned)] == [5, 3, 2]


def test_assert_patient_disjoint_names_offenders():
    a = SourceRecord(id="x/1", patient="17", dataset="x", path="")
    b = SourceRecord(id="x/2", patient="17", dataset="x", path="")
    c = SourceRecord(id="x/3", patient="", dataset="x", path="")
    assert_patient_disjoint(
        {"train": [a, c], "val": [SourceRecord(id="x/4", patient="", dataset="x", path="")]}
    )
    with pytest.raises(ValueError, match=r"x/17 in \['train', 'val'\]"):
        assert_patient_disjoint({"train": [a], "val": [b]})
