"""acl_jax.prepare end to end on real files: the bundled PTB-XL sample and the CinC fixture.

One reference preparation (workers=1, filters off, 5 records per shard) is shared; the CLI run
(workers=2), the killed-and-resumed run and the rerun checks compare against it byte for byte.
"""

import ast
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from acl_jax.data import record as record_lib
from acl_jax.data.manifest import load_manifest
from acl_jax.data.shards import STATE_FILE, read_shard
from acl_jax.leads import LEAD_INDEX, canonical_lead
from acl_jax.prepare import PrepareArgs, PrepareError, run

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "ptbxl"
CINC = REPO / "tests" / "fixtures" / "cinc"
SPLITS = "train=1-4,val=5,test=6"
FOLD_OF = {"train": {1, 2, 3, 4}, "val": {5}, "test": {6}}
VOLATILE = ("created", "elapsed_s", "stage_s")  # the only manifest keys that may differ


def _args(src: Path, out: Path, **kw) -> PrepareArgs:
    base = dict(
        dataset="ptbxl",
        src=str(src),
        out=str(out),
        splits=SPLITS,
        shard_size=5,
        workers=1,
        highpass=0.0,
        lowpass=0.0,
    )
    return PrepareArgs(**{**base, **kw})


def _cli(src: Path, out: Path, *extra: str, **popen) -> list[str]:
    return [
        sys.executable,
        "-m",
        "acl_jax.prepare",
        "--dataset=ptbxl",
        f"--src={src}",
        f"--out={out}",
        f"--splits={SPLITS}",
        "--shard-size=5",
        "--highpass=0",
        "--lowpass=0",
        *extra,
    ]


def _csv_rows(src: Path = SAMPLE) -> list[dict[str, str]]:
    with open(src / "ptbxl_database.csv", newline="") as f:
        return list(csv.DictReader(f))


def _records(out: Path, manifest: dict, split: str) -> list[dict]:
    return [
        record_lib.decode(b)
        for rel in manifest["splits"][split]["shards"]
        for b in read_shard(out / rel)
    ]


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _stable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    return out, run(_args(SAMPLE, out))


def test_counts_layout_and_patients(reference):
    out, m = reference
    rows = _csv_rows()
    folds = Counter(int(r["strat_fold"]) for r in rows)
    assert m == load_manifest(out)
    assert m["source"]["dataset"] == "ptbxl" and m["fs"] == 100 and not m["skipped"]
    for split, fs in FOLD_OF.items():
        info = m["splits"][split]
        assert info["num_records"] == sum(folds[f] for f in fs)
        assert len(info["shards"]) == -(-info["num_records"] // 5)
        n = len(info["shards"])
        assert info["shards"][0] == f"{split}/{split}-00000-of-{n:05d}.array_record"
        patients = {r["patient_id"] for r in rows if int(r["strat_fold"]) in fs}
        assert info["num_patients"] == len(patients)
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    shards = {s for v in m["splits"].values() for s in v["shards"]}
    assert written == shards | {"manifest.json"}  # no temporaries, no resume state left
    by_split = {s: {r["patient"] for r in _records(out, m, s)} for s in FOLD_OF}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])


def test_signals_equal_wfdb_and_sorted_ids(reference):
    out, m = reference
    path_of = {f"ptbxl/{int(r['ecg_id']):05d}": r["filename_lr"] for r in _csv_rows()}
    fold_of = {f"ptbxl/{int(r['ecg_id']):05d}": int(r["strat_fold"]) for r in _csv_rows()}
    for split in FOLD_OF:
        recs = _records(out, m, split)
        ids = [r["id"] for r in recs]
        assert ids == sorted(ids)
        for r in recs:
            assert fold_of[r["id"]] in FOLD_OF[split]
            raw, fields = wfdb.rdsamp(str(SAMPLE / path_of[r["id"]]))
            order = [LEAD_INDEX[canonical_lead(n)] for n in fields["sig_name"]]
            expect = np.zeros((12, raw.shape[0]))
            expect[order] = raw.T * 1000.0
            assert r["signal"].shape == (12, 1000) and r["fs"] == 100 and r["orig_fs"] == 100
            assert np.abs(r["signal"] - expect).max() <= 1.0, r["id"]
            assert r["lead_mask"].tolist() == [1] * 12


def test_label_vocabularies_and_counts_match_csv(reference):
    out, m = reference
    with open(SAMPLE / "scp_statements.csv", newline="") as f:
        superclass = {
            r[""]: r["diagnostic_class"] for r in csv.DictReader(f) if r["diagnostic"] == "1.0"
        }
    expect = {"all": {}, "superdiagnostic": {}}
    for row in _csv_rows():
        split = next(s for s, fs in FOLD_OF.items() if int(row["strat_fold"]) in fs)
        codes = ast.literal_eval(row["scp_codes"])
        labels = {
            "all": set(codes),
            "superdiagnostic": {superclass[c] for c in codes if c in superclass},
        }
        for task, classes in labels.items():
            expect[task].setdefault(split, Counter()).update(classes)
    for task, per_split in expect.items():
        classes = sorted(set().union(*per_split.values()))
        assert m["tasks"][task]["classes"] == classes
        for split in FOLD_OF:
            assert m["tasks"][task]["counts"][split] == {c: per_split[split][c] for c in classes}


def test_rpeaks_plausible_and_lead_stats_exact(reference):
    out, m = reference
    rates = []
    for split in FOLD_OF:
        for r in _records(out, m, split):
            p = r["rpeaks"]
            assert np.all(np.diff(p) > 0) and p.min() >= 0 and p.max() < r["signal"].shape[1]
            rates.append(60.0 * 100 / np.median(np.diff(p)) if len(p) > 1 else 0.0)
    assert np.mean([30 <= hr <= 200 for hr in rates]) >= 0.9
    train = np.stack([r["signal"] for r in _records(out, m, "train")]).astype(np.float64)
    np.testing.assert_allclose(m["lead_stats"]["mean_uv"], train.mean(axis=(0, 2)), rtol=1e-9)
    np.testing.assert_allclose(m["lead_stats"]["std_uv"], train.std(axis=(0, 2)), rtol=1e-9)


def test_rerun_same_args_is_a_noop_other_args_refused(reference, capsys):
    out, m = reference
    before = _files(out)
    assert run(_args(SAMPLE, out, workers=2)) == m  # workers do not change the output
    assert "already prepared" in capsys.readouterr().out
    with pytest.raises(PrepareError, match="shard_size: 5 -> 7.*--overwrite"):
        run(_args(SAMPLE, out, shard_size=7))
    assert _files(out) == before


def test_cli_with_two_workers_is_byte_identical(reference, tmp_path):
    out, m = reference
    proc = subprocess.run(
        _cli(SAMPLE, tmp_path / "cli", "--workers=2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "train 159, val 15, test 15 records; skipped 0" in proc.stdout
    assert _files(tmp_path / "cli") == _files(out)
    assert _stable(load_manifest(tmp_path / "cli")) == _stable(m)


def test_killed_run_resumes_to_identical_output(reference, tmp_path):
    out, m = reference
    dst = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(SAMPLE, dst, "--workers=1"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done: dict = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = json.loads((dst / STATE_FILE).read_text())["shards"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                done = {}
            if len(done) >= 2:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(done) >= 2 and not (dst / "manifest.json").exists()
    kept = {rel: os.stat(dst / rel).st_ino for rel in done}
    resumed = run(_args(SAMPLE, dst))
    assert {rel: os.stat(dst / rel).st_ino for rel in kept} == kept  # kept, not rewritten
    assert _files(dst) == _files(out)
    assert _stable(resumed) == _stable(m)
    with pytest.raises(PrepareError, match="other arguments"):
        # an unfinished run with different arguments must not be mixed into
        (dst / "manifest.json").unlink()
        (dst / STATE_FILE).write_text(json.dumps({"version": 1, "args": {"fs": 500}, "shards": {}}))
        run(_args(SAMPLE, dst))


def _sample_copy(tmp_path: Path, n: int) -> tuple[Path, list[dict[str, str]]]:
    """The first n sample records (csv rows in ecg_id order) copied to tmp_path/src."""
    src = tmp_path / "src"
    rows = sorted(_csv_rows(), key=lambda r: int(r["ecg_id"]))[:n]
    shutil.copy(SAMPLE / "scp_statements.csv", src.mkdir() or src / "scp_statements.csv")
    with open(SAMPLE / "ptbxl_database.csv", newline="") as f:
        header = next(csv.reader(f))
    with open(src / "ptbxl_database.csv", "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        for ext in (".hea", ".dat"):
            dst = src / (r["filename_lr"] + ext)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / (r["filename_lr"] + ext), dst)
    return src, rows


def _corrupt_copy(tmp_path: Path, n: int) -> tuple[Path, dict[str, str]]:
    """The first n sample records, three of them damaged; returns (src, {id: expected reason})."""
    src, rows = _sample_copy(tmp_path, n)
    damaged = [r for r in rows if r["strat_fold"] != "6"][1:8:3]  # fold 6 is left unassigned
    ids = [f"ptbxl/{int(r['ecg_id']):05d}" for r in damaged]
    truncated, deleted, nan = (src / r["filename_lr"] for r in damaged)
    dat = truncated.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    deleted.with_suffix(".dat").unlink()
    deleted.with_suffix(".hea").unlink()
    size = nan.with_suffix(".dat").stat().st_size
    nan.with_suffix(".dat").write_bytes(np.full(size // 2, -32768, "<i2").tobytes())
    return src, {ids[0]: "truncated", ids[1]: "missing", ids[2]: "NaN"}


def test_corrupt_records_are_skipped_with_reasons(tmp_path):
    src, bad = _corrupt_copy(tmp_path, 30)
    fold6 = sum(r["strat_fold"] == "6" for r in _csv_rows(src))
    assert fold6 > 0
    m = run(_args(src, tmp_path / "ok", max_skip_fraction=0.2, splits="a=1-5"))
    assert m["splits"]["a"]["num_records"] == 30 - fold6 - 3
    assert m["unassigned"] == fold6  # excluded by the split spec: counted, not skipped
    assert [s["id"] for s in m["skipped"]] == sorted(bad)
    for s in m["skipped"]:
        assert bad[s["id"]] in s["reason"]
    frac = rf"skipped 3 of {30 - fold6} records \({300 / (30 - fold6):.2f}%\)"
    with pytest.raises(PrepareError, match=frac):
        run(_args(src, tmp_path / "strict", max_skip_fraction=0.01, splits="a=1-5"))
    strict = load_manifest(tmp_path / "strict")  # written before failing: nothing is lost
    assert strict["skipped"] == m["skipped"] and strict["splits"] == m["splits"]


def test_rerun_of_a_failed_skip_check_fails_again(tmp_path):
    """A pipeline's retry must not turn a failure into success; a higher threshold passes."""
    src, _ = _corrupt_copy(tmp_path, 30)
    a = _args(src, tmp_path / "out", max_skip_fraction=0.01, splits="a=1-5")
    with pytest.raises(PrepareError, match="max-skip-fraction") as first:
        run(a)
    with pytest.raises(PrepareError) as again:
        run(a)
    assert str(again.value) == str(first.value)
    m = run(dataclasses.replace(a, max_skip_fraction=0.2))
    assert len(m["skipped"]) == 3 and m == load_manifest(tmp_path / "out")


def test_impossible_header_values_skip_the_record_with_a_reason(tmp_path):
    """Gain 0 (WFDB would read it as 200: the lead 5x too large), negative or NaN gains and an
    ADC resolution no converter has are refused per record; the other records are prepared."""
    src, rows = _sample_copy(tmp_path, 12)
    edits = {  # record index -> (old field, new field) on signal line 3 (lead III)
        1: ("1000.0(0)/mV", "0(0)/mV"),
        4: ("1000.0(0)/mV", "-1000.0(0)/mV"),
        7: ("1000.0(0)/mV", "nan(0)/mV"),
        10: ("1000.0(0)/mV 16", "1000.0(0)/mV 99"),
    }
    reasons = {}
    for i, (old, new) in edits.items():
        hea = src / (rows[i]["filename_lr"] + ".hea")
        lines = hea.read_text().splitlines(keepends=True)
        assert old in lines[3]
        lines[3] = lines[3].replace(old, new, 1)
        hea.write_text("".join(lines))
        reasons[f"ptbxl/{int(rows[i]['ecg_id']):05d}"] = new.split()[-1]
    m = run(_args(src, tmp_path / "out", splits="a=1-6", max_skip_fraction=0.5))
    assert {s["id"] for s in m["skipped"]} == set(reasons)
    for s in m["skipped"]:
        assert "signal 3" in s["reason"] and repr(reasons[s["id"]]) in s["reason"], s
    assert m["splits"]["a"]["num_records"] == 12 - 4


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_prepare_ends_its_workers_and_resource_tracker(tmp_path):
    out = tmp_path / "killed"
    code = (
        "from acl_jax.prepare import PrepareArgs, run; "
        f"run(PrepareArgs(dataset='ptbxl', src={str(SAMPLE)!r}, out={str(out)!r}, "
        f"splits={SPLITS!r}, shard_size=1, workers=2))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.DEVNULL)
    children: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # the workers are converting: their results have reached shards
                working = len(json.loads((out / STATE_FILE).read_text())["shards"]) >= 2
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                working = False
            if working:
                children = _children(proc.pid)
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(children) >= 3, children  # 2 workers and multiprocessing's resource tracker
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, children)):
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)]


def test_missing_or_malformed_label_file_fails_at_once(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    (src / "ptbxl_database.csv").write_text("this,is\nnot,ptbxl\n")
    with pytest.raises(PrepareError, match="ptbxl_database.csv"):
        run(_args(src, tmp_path / "out1"))
    (src / "ptbxl_database.csv").unlink()
    with pytest.raises(PrepareError, match="ptbxl_database.csv"):
        run(_args(src, tmp_path / "out2"))
    assert not (tmp_path / "out2" / "manifest.json").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(PrepareError, match="--fs 200"):
        run(_args(SAMPLE, tmp_path / "o", fs=200))
    with pytest.raises(PrepareError, match="fold 5 is in both"):
        run(_args(SAMPLE, tmp_path / "o", splits="train=1-5,val=5"))
    with pytest.raises(PrepareError, match="is not a directory"):
        run(_args(tmp_path / "nope", tmp_path / "o"))


def test_cinc_fractional_patient_split(tmp_path):
    m = run(
        PrepareArgs(
            dataset="cinc",
            src=str(CINC),
            out=str(tmp_path / "cinc"),
            fs=100,
            splits="train=0.5,val=0.25,test=0.25",
            split_seed=1,
            workers=1,
        )
    )
    heads = {p.stem: p.read_text() for p in CINC.glob("*.hea")}
    assert {k: v["num_records"] for k, v in m["splits"].items()} == {
        "train": 4,
        "val": 1,
        "test": 2,
    }
    assert not m["skipped"] and m["source"]["args"]["split_seed"] == 1
    dx = Counter()
    seen = []
    for split in m["splits"]:
        for r in _records(tmp_path / "cinc", m, split):
            name = r["id"].split("/")[-1]
            seen.append(name)
            samples = int(heads[name].splitlines()[0].split()[3])
            assert r["signal"].shape == (12, -(-samples // 5)) and r["orig_fs"] == 500.0
            assert r["fold"] == -1 and len(r["rpeaks"]) >= 5
            codes = next(ln for ln in heads[name].splitlines() if "Dx:" in ln).split(":")[1]
            dx.update(c.strip() for c in codes.split(","))
            assert sorted(r["labels"]["snomed"]) == sorted(c.strip() for c in codes.split(","))
    assert sorted(seen) == sorted(heads)
    counts = m["tasks"]["snomed"]["counts"]
    assert {c: sum(counts[s][c] for s in counts) for c in m["tasks"]["snomed"]["classes"]} == dx
    again = run(
        PrepareArgs(
            dataset="cinc",
            src=str(CINC),
            out=str(tmp_path / "cinc2"),
            fs=100,
            splits="train=0.5,val=0.25,test=0.25",
            split_seed=2,
            workers=1,
        )
    )

    def ids(out, man):
        return {s: [r["id"] for r in _records(out, man, s)] for s in man["splits"]}

    assert ids(tmp_path / "cinc2", again) != ids(tmp_path / "cinc", m)  # the seed matters


def test_overwrite_replaces_and_stray_shards_are_refused(tmp_path):
    out = tmp_path / "o"
    first = run(_args(SAMPLE, out, limit=12, splits="all=1-6"))
    assert [len(read_shard(out / s)) for s in first["splits"]["all"]["shards"]] == [5, 5, 2]
    second = run(_args(SAMPLE, out, limit=12, splits="all=1-6", shard_size=7, overwrite=True))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.array_record")) == sorted(
        second["splits"]["all"]["shards"]
    )
    assert [len(read_shard(out / s)) for s in second["splits"]["all"]["shards"]] == [7, 5]
    stray = tmp_path / "stray"
    (stray / "all").mkdir(parents=True)
    shutil.copy(out / second["splits"]["all"]["shards"][0], stray / "all")
    with pytest.raises(PrepareError, match="no .prepare-state.json"):
        run(_args(SAMPLE, stray, limit=12, splits="all=1-6"))
