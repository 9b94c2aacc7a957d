"""Dataset readers against wfdb/scipy on real records (bundled PTB-XL sample, CinC fixtures), and
their errors on damaged copies made in tmp_path."""

import ast
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from acl_jax.data import cinc, ptbxl, snomed, wfdb_folder
from acl_jax.data.sources import BadRecord, LabelFileError, SourceRecord

ROOT = Path(__file__).resolve().parents[1]
PTBXL = ROOT / "data" / "sample" / "ptbxl"
CINC = ROOT / "tests" / "fixtures" / "cinc"
CINC_NAMES = ["A0004", "A0006", "E00009", "E07500", "JS00006", "JS20003", "Q0010"]


def _copy_record(src: Path, dst_dir: Path, exts=(".hea", ".dat")) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in exts:
        shutil.copy(src.with_suffix(ext), dst_dir / (src.name + ext))
    return dst_dir / src.name


def _rec(path: Path) -> SourceRecord:
    return SourceRecord(id="t/x", patient="", dataset="t", path=str(path))


# ---------------------------------------------------------------- PTB-XL


def test_ptbxl_signals_match_wfdb():
    recs = ptbxl.list_records(PTBXL)
    assert len(recs) == 189
    assert [r.id for r in recs] == sorted(r.id for r in recs)
    for rec in recs[::30]:
        sig, names, fs = ptbxl.load_signal(rec)
        ref, fields = wfdb.rdsamp(rec.path)
        np.testing.assert_array_equal(sig, ref)
        assert names == fields["sig_name"]
        assert fs == fields["fs"] == 100
        assert sig.shape == (1000, 12) and sig.dtype == np.float64


def _benchmark_labels(row_codes: dict, agg: pd.DataFrame) -> dict:
    """The aggregation of ecg_ptbxl_benchmarking utils.compute_label_aggregations, redone here
    with pandas so the reader's csv-module implementation is checked independently."""
    diag = agg[agg.diagnostic == 1.0]
    out = {"all": set(row_codes)}
    out["diagnostic"] = {k for k in row_codes if k in diag.index}
    out["subdiagnostic"] = {
        str(diag.loc[k].diagnostic_subclass) for k in row_codes if k in diag.index
    } - {"nan"}
    out["superdiagnostic"] = {
        str(diag.loc[k].diagnostic_class) for k in row_codes if k in diag.index
    } - {"nan"}
    out["form"] = {k for k in row_codes if k in agg[agg.form == 1.0].index}
    out["rhythm"] = {k for k in row_codes if k in agg[agg.rhythm == 1.0].index}
    return {k: sorted(v) for k, v in out.items()}


def test_ptbxl_metadata_and_task_labels_match_benchmark_aggregation():
    df = pd.read_csv(PTBXL / "ptbxl_database.csv", index_col="ecg_id")
    agg = pd.read_csv(PTBXL / "scp_statements.csv", index_col=0)
    recs = {r.id: r for r in ptbxl.list_records(PTBXL)}
    for ecg_id, row in df.iterrows():
        rec = recs[f"ptbxl/{ecg_id:05d}"]
        codes = ast.literal_eval(row.scp_codes)
        assert rec.codes == codes
        assert rec.labels == _benchmark_labels(codes, agg)
        assert set(rec.labels) == set(ptbxl.TASKS)
        assert rec.patient == str(int(row.patient_id))
        assert rec.fold == row.strat_fold
        assert rec.sex == ("M" if row.sex == 0 else "F")
        assert rec.path == str(PTBXL / row.filename_lr)
        expected_age = 90.0 if row.age == 300.0 else row.age  # PTB-XL codes age > 89 as 300
        assert math.isnan(rec.age) if math.isnan(row.age) else rec.age == expected_age
    assert (df.age == 300.0).sum() == 1  # the sample holds one such record
    # A known record, spelled out: ecg_id 42 = {'NORM': 100.0, 'SR': 0.0}.
    r42 = recs["ptbxl/00042"]
    assert r42.labels == {
        "all": ["NORM", "SR"],
        "diagnostic": ["NORM"],
        "subdiagnostic": ["NORM"],
        "superdiagnostic": ["NORM"],
        "form": [],
        "rhythm": ["SR"],
    }
    assert (r42.patient, r42.fold, r42.sex, r42.age) == ("8039", 6, "F", 28.0)


def _ptbxl_copy(tmp_path: Path, with_records500: bool = False) -> Path:
    root = tmp_path / "ptbxl"
    root.mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(PTBXL / name, root / name)
    if with_records500:
        (root / "records500").mkdir()
    return root


def test_ptbxl_age_300_means_over_89_and_limit(tmp_path):
    root = _ptbxl_copy(tmp_path)
    df = pd.read_csv(root / "ptbxl_database.csv")
    df.loc[0, "age"] = 300.0
    df.to_csv(root / "ptbxl_database.csv", index=False)
    recs = ptbxl.list_records(root, limit=3)
    assert len(recs) == 3
    first = next(r for r in ptbxl.list_records(root) if r.id == f"ptbxl/{df.ecg_id[0]:05d}")
    assert first.age == 90.0


def test_ptbxl_prefer_hr_uses_records500_only_when_present(tmp_path):
    lr = ptbxl.list_records(_ptbxl_copy(tmp_path / "a"), prefer_hr=True)
    assert all("records100/" in r.path and r.path.endswith("_lr") for r in lr)
    hr = ptbxl.list_records(_ptbxl_copy(tmp_path / "b", with_records500=True), prefer_hr=True)
    assert all("records500/" in r.path and r.path.endswith("_hr") for r in hr)
    # Listed although absent on disk: load_signal reports it.
    with pytest.raises(BadRecord, match=r"_hr\.hea: missing"):
        ptbxl.load_signal(hr[0])


@pytest.mark.parametrize(
    "damage, match",
    [
        ("no_database", r"ptbxl_database\.csv: missing"),
        ("no_statements", r"scp_statements\.csv: missing"),
        ("drop_column", r"ptbxl_database\.csv: missing columns \['scp_codes'\]"),
        ("bad_codes", r"ptbxl_database\.csv: ecg_id \d+: unparsable scp_codes"),
        ("statements_column", r"scp_statements\.csv: missing columns \['diagnostic_class'\]"),
    ],
)
def test_ptbxl_label_file_errors_name_the_file(tmp_path, damage, match):
    root = _ptbxl_copy(tmp_path)
    db, st = root / "ptbxl_database.csv", root / "scp_statements.csv"
    if damage == "no_database":
        db.unlink()
    elif damage == "no_statements":
        st.unlink()
    elif damage == "drop_column":
        pd.read_csv(db).drop(columns="scp_codes").to_csv(db, index=False)
    elif damage == "bad_codes":
        df = pd.read_csv(db)
        df.loc[5, "scp_codes"] = "{'NORM': 100.0"
        df.to_csv(db, index=False)
    elif damage == "statements_column":
        pd.read_csv(st).drop(columns="diagnostic_class").to_csv(st, index=False)
    with pytest.raises(LabelFileError, match=match):
        ptbxl.list_records(root)


def _damaged_ptbxl_record(tmp_path: Path, damage: str) -> Path:
    path = _copy_record(PTBXL / "records100" / "00000" / "00042_lr", tmp_path)
    hea, dat = path.with_suffix(".hea"), path.with_suffix(".dat")
    lines = hea.read_text().splitlines()
    if damage == "truncated":
        dat.write_bytes(dat.read_bytes()[:-100])
    elif damage == "missing_dat":
        dat.unlink()
    elif damage == "lead_count":
        lines[0] = lines[0].replace(" 12 100 ", " 11 100 ")
    elif damage == "missing_signal_line":
        del lines[5]
    elif damage == "sample_count":
        lines[0] = lines[0].replace(" 1000", " 900")
    elif damage == "units":
        lines[3] = lines[3].replace("/mV", "/furlong")
    elif damage == "rate":
        lines[0] = lines[0].replace(" 100 ", " 0 ")
    elif damage == "no_rate":
        lines[0] = "00042_lr 12"
    hea.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "damage, match",
    [
        ("truncated", r"00042_lr\.dat: truncated: 23900 bytes, header .* needs 24000"),
        ("missing_dat", r"00042_lr\.dat: signal file missing"),
        ("lead_count", r"00042_lr\.hea: header declares 11 signals but lists 12"),
        ("missing_signal_line", r"00042_lr\.hea: header declares 12 signals but lists 11"),
        ("sample_count", r"00042_lr\.dat: longer than the header says"),
        ("units", r"00042_lr\.hea: lead 'III' has unknown units 'furlong'"),
        ("rate", r"00042_lr\.hea: sampling rate '0' is not positive"),
        ("no_rate", r"00042_lr\.hea: no sampling rate in the record line"),
    ],
)
def test_damaged_wfdb_record_raises_bad_record(tmp_path, damage, match):
    path = _damaged_ptbxl_record(tmp_path, damage)
    with pytest.raises(BadRecord, match=match):
        ptbxl.load_signal(_rec(path))


# ---------------------------------------------------------------- CinC


@pytest.fixture()
def nested_cinc(tmp_path):
    """The fixtures spread over nested folders, as in the Challenge download."""
    for name in CINC_NAMES:
        sub = tmp_path / "training" / cinc.dataset_of(name) / "g1"
        _copy_record(CINC / name, sub, exts=(".hea", ".mat"))
    return tmp_path


def test_cinc_lists_nested_folders_with_metadata(nested_cinc):
    recs = cinc.list_records(nested_cinc)
    assert [r.id.split("/")[1] for r in recs] == CINC_NAMES
    by = {r.id: r for r in recs}
    assert {r.dataset for r in recs} == {"cpsc2018", "cpsc_extra", "georgia", "chapman_ningbo"}
    a6 = by["cpsc2018/A0006"]
    assert a6.patient == "" and a6.fold == -1
    assert a6.codes == {"59118001": 100.0}
    assert a6.labels == {"snomed": ["59118001"], "snomed_scored": ["713427006"]}  # RBBB -> CRBBB
    js = by["chapman_ningbo/JS20003"]
    assert (js.age, js.sex) == (82.0, "F")
    assert js.labels["snomed"] == sorted(
        ["284470004", "427084000", "55827005", "164934002", "427172004"]
    )
    assert js.labels["snomed_scored"] == ["164934002", "284470004", "427084000", "427172004"]
    assert (by["cpsc2018/A0004"].age, by["cpsc2018/A0004"].sex) == (45.0, "M")
    assert len(cinc.list_records(nested_cinc, limit=2)) == 2


def test_cinc_signals_match_loadmat_with_gains_and_wfdb(nested_cinc):
    lengths = set()
    for rec in cinc.list_records(nested_cinc):
        sig, names, fs = cinc.load_signal(rec)
        hdr = wfdb.rdheader(rec.path)
        val = scipy.io.loadmat(rec.path + ".mat")["val"]
        expected = (val.T.astype(np.float64) - np.asarray(hdr.baseline)) / np.asarray(hdr.adc_gain)
        np.testing.assert_array_equal(sig, expected)
        np.testing.assert_array_equal(sig, wfdb.rdsamp(rec.path)[0])
        assert names == hdr.sig_name and fs == 500
        lengths.add(sig.shape[0])
    assert lengths == {5974, 7000, 6000, 5000}


def test_cinc_duplicate_record_names_stop_the_listing(nested_cinc):
    _copy_record(CINC / "A0004", nested_cinc / "copy", exts=(".hea", ".mat"))
    with pytest.raises(
        LabelFileError, match=r"record A0004 is in .* twice \(.*/copy and .*/cpsc2018/g1\)"
    ):
        cinc.list_records(nested_cinc)


def test_empty_or_missing_folders_stop_the_listing(tmp_path):
    for reader in (cinc, wfdb_folder):
        with pytest.raises(LabelFileError, match="no .*hea"):
            reader.list_records(tmp_path)
        with pytest.raises(LabelFileError, match="nowhere: not a folder"):
            reader.list_records(tmp_path / "nowhere")


def test_cinc_dataset_prefixes():
    assert [cinc.dataset_of(n) for n in ["HR00001", "S0001", "I0016", "X0001", "Q0001"]] == [
        "ptbxl",
        "ptb",
        "incart",
        "cinc",
        "cpsc_extra",
    ]


def test_snomed_tables():
    assert len(snomed.SCORED) == 27
    assert snomed.SCORED["164889003"] == "AF"
    assert set(snomed.EQUIVALENT.values()) <= set(snomed.SCORED)
    assert snomed.scored_labels(["17338001", "427172004", "1234"]) == ["427172004"]


@pytest.mark.parametrize(
    "damage, match",
    [
        ("truncated_mat", r"A0004\.mat: cannot read MATLAB file"),
        ("garbage_mat", r"A0004\.mat: cannot read MATLAB file"),
        ("missing_mat", r"A0004\.mat: signal file missing"),
        (
            "lead_count",
            r"A0004\.mat: 'val' has shape \(12, 5974\) but A0004\.hea declares 11 leads",
        ),
        ("sample_count", r"A0004\.mat: 'val' has shape \(12, 5974\) .* 12 leads x 6000 samples"),
        ("signal_lines", r"A0004\.hea: header declares 12 signals but lists 11"),
    ],
)
def test_damaged_cinc_record_raises_bad_record(tmp_path, damage, match):
    path = _copy_record(CINC / "A0004", tmp_path, exts=(".hea", ".mat"))
    mat, hea = path.with_suffix(".mat"), path.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    if damage == "truncated_mat":
        mat.write_bytes(mat.read_bytes()[:50_000])
    elif damage == "garbage_mat":
        raw = bytearray(mat.read_bytes())
        raw[:24] = b"\xff" * 24  # the MATLAB v4 header: type, rows, cols, imag, name length
        mat.write_bytes(bytes(raw))
    elif damage == "missing_mat":
        mat.unlink()
    elif damage == "lead_count":
        lines[0] = lines[0].replace(" 12 500 ", " 11 500 ")
        del lines[12]
    elif damage == "sample_count":
        lines[0] = lines[0].replace(" 5974", " 6000")
    elif damage == "signal_lines":
        del lines[12]
    hea.write_text("\n".join(lines) + "\n")
    [rec] = cinc.list_records(tmp_path)
    with pytest.raises(BadRecord, match=match):
        cinc.load_signal(rec)


# ---------------------------------------------------------------- any WFDB folder


def test_wfdb_folder_glob_and_records_file(tmp_path):
    recs = wfdb_folder.list_records(PTBXL / "records100", limit=4)
    assert [r.id for r in recs][:2] == ["wfdb/00000/00042_lr", "wfdb/00000/00149_lr"]
    assert all(r.labels == {"dx": []} and r.patient == "" for r in recs)
    sig, names, fs = wfdb_folder.load_signal(recs[1])
    ref, fields = wfdb.rdsamp(recs[1].path)
    np.testing.assert_array_equal(sig, ref)
    assert (names, fs) == (fields["sig_name"], 100)
    folder = tmp_path / "db"
    for name in ("00042_lr", "00149_lr"):
        _copy_record(PTBXL / "records100" / "00000" / name, folder / "sub")
    (folder / "RECORDS").write_text("sub/00149_lr\n\n")
    assert [r.id for r in wfdb_folder.list_records(folder)] == ["wfdb/sub/00149_lr"]


def test_wfdb_folder_reads_cinc_headers_and_dx(nested_cinc):
    recs = wfdb_folder.list_records(nested_cinc)
    assert len(recs) == len(CINC_NAMES)
    refs = {r.path: r for r in cinc.list_records(nested_cinc)}
    for rec in recs:
        ref = refs[rec.path]
        assert rec.labels == {"dx": ref.labels["snomed"]}
        assert (rec.age, rec.sex) == (ref.age, ref.sex)
        np.testing.assert_array_equal(wfdb_folder.load_signal(rec)[0], cinc.load_signal(ref)[0])


def test_wfdb_folder_other_formats_and_units_via_wfdb(tmp_path):
    rng = np.random.default_rng(0)
    d = rng.integers(-2000, 2000, size=(700, 2)).astype(np.int16)
    wfdb.wrsamp(
        "rec212",
        fs=360,
        units=["mV", "uV"],
        sig_name=["MLII", "V5"],
        d_signal=d,
        fmt=["212", "212"],
        adc_gain=[200.0, 2.0],
        baseline=[0, 10],
        write_dir=tmp_path,
    )
    [rec] = wfdb_folder.list_records(tmp_path)
    sig, names, fs = wfdb_folder.load_signal(rec)
    ref = wfdb.rdsamp(str(tmp_path / "rec212"))[0]
    np.testing.assert_allclose(sig, ref * np.array([1.0, 1e-3]))
    assert names == ["MLII", "V5"] and fs == 360
    assert np.abs(sig[:, 1]).max() < 1.1  # uV became mV
