"""Raw LUDB records as a dense-labelling dataset at a checkpoint's rate (task ludb_segmentation).

Per record (acl_jax.data.ludb.read_ludb, 12 leads, 10 s at 500 Hz):
  signal  acl_jax.data.preprocess.process at the checkpoint's rate with the default
          PreprocessConfig: scipy resample_poly, the 0.5-40 Hz band-pass and int16 microvolt
          rounding of `python -m acl_jax.prepare`, so the encoder sees inputs like the prepared
          data it was pretrained on.
  labels  lead II's wave mask (acl_jax.data.ludb.wave_masks: 0 none, 1 P, 2 QRS, 3 T), resampled
          by nearest sample: label[j] = source[round(j * fs_source / fs)].
  span    only the annotated part is kept (ludb.annotated_span, converted to the new rate):
          outside it beats exist but carry no label, so they can be neither targets nor errors.
Target choice: ONE label per time step for the 12-lead input, lead II's. LUDB annotates each lead
separately, but the waves are the same electrical events: lead boundaries differ by a few ms.
Lead II is the conventional delineation lead. In lead-wise mode the encoder's per-time map is a
mean over leads (ECGEncoder.features_map), so a single shared target fits it.

Split: LUDB has one record per patient (200 subjects, 200 records), so splitting records is
splitting patients. Names are sorted numerically and permuted with the seed; the test and val
counts are round(fraction * n), at least 1 each, and the rest is train (at least 1).
Windows: W = the checkpoint's eval window, starts every W // 2 samples plus one aligned to the
span's end (acl_jax.data.windows.window_starts); a span shorter than W is zero-padded, and the
padding is marked invalid (no loss, no score).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from acl_jax.data.ludb import annotated_span, read_ludb, wave_masks
from acl_jax.data.preprocess import PreprocessConfig, process
from acl_jax.data.record import UV_PER_MV
from acl_jax.data.sources import BadRecord
from acl_jax.data.windows import window_starts
from acl_jax.leads import LEADS

TARGET_LEAD = "II"
NUM_LABELS = 4  # none, P, QRS, T


class LudbDataError(ValueError):
    """The LUDB directory or a record cannot be used; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class SegRecord:
    """The annotated span of one record at the target rate: signal (12, S) float32 mV,
    lead_mask (12,) float32, labels (S,) int32 in 0..3."""

    name: str
    signal: np.ndarray
    lead_mask: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Windows:
    """N windows of W samples: signal (N, 12, W) f32, lead_mask (N, 12) f32, labels (N, W) i32,
    valid (N, W) bool (False on padding), record (N,) i32 (index into the record list),
    start (N,) i32 (window start in the record's span)."""

    signal: np.ndarray
    lead_mask: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    record: np.ndarray
    start: np.ndarray


def list_records(data_dir: str) -> list[str]:
    """Names of the annotated records in `data_dir` (a header and lead II annotations each),
    sorted numerically where names are numbers ("1", "2", ..., "200")."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LudbDataError(
            f"{data_dir} is not a directory: pass --data the LUDB record folder (with 1.hea, "
            "1.dat, 1.i, ...; e.g. python -m acl_jax.download ludb --out DIR, then DIR/data)"
        )
    names = [p.stem for p in root.glob("*.hea") if (root / f"{p.stem}.ii").exists()]
    if not names:
        raise LudbDataError(
            f"{data_dir} holds no LUDB record (NAME.hea with NAME.ii annotations): pass --data "
            "the folder of the raw LUDB records, not prepared shards"
        )
    return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))


def split_records(
    names: list[str], fractions: tuple[float, float, float], seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Seeded patient-wise (= record-wise) split into (train, val, test) name lists."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise LudbDataError(
            f"--record-split={fractions}: give three non-negative fractions train,val,test "
            "summing to 1 (e.g. 0.6,0.2,0.2)"
        )
    n = len(names)
    n_test = max(1, round(fractions[2] * n))
    n_val = max(1, round(fractions[1] * n))
    if n - n_test - n_val < 1:
        raise LudbDataError(
            f"{n} records cannot give train, val and test at least one record each with "
            f"--record-split={fractions}: use more records"
        )
    order = [names[i] for i in np.random.default_rng(seed).permutation(n)]
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return (
        sorted(train, key=names.index),
        sorted(val, key=names.index),
        sorted(test, key=names.index),
    )


def nearest_labels(labels: np.ndarray, fs_in: float, fs_out: int, length: int) -> np.ndarray:
    """(T_in,) labels at fs_in -> (length,) at fs_out, each output sample taking the label of the
    nearest input sample (no interpolation between classes)."""
    src = np.floor(np.arange(length) * (fs_in / fs_out) + 0.5).astype(np.int64)
    return labels[np.minimum(src, labels.shape[0] - 1)]


def load_record(data_dir: str, name: str, fs: int) -> SegRecord:
    """Reads, preprocesses, labels and crops record `name` at rate `fs` (module docstring)."""
    path = str(Path(data_dir) / name)
    rec = read_ludb(path)
    try:
        out = process(rec.signal.T, list(LEADS), rec.fs, PreprocessConfig(fs=fs))
    except BadRecord as e:
        raise LudbDataError(f"{path}: {e}") from e
    length = out.signal_uv.shape[1]
    labels = nearest_labels(wave_masks(rec, TARGET_LEAD).astype(np.int32), rec.fs, fs, length)
    lo, hi = annotated_span(rec)
    start = int(np.floor(lo * fs / rec.fs))
    stop = min(int(np.ceil(hi * fs / rec.fs)), length)
    signal = out.signal_uv[:, start:stop].astype(np.float32) / np.float32(UV_PER_MV)
    return SegRecord(name, signal, out.lead_mask.astype(np.float32), labels[start:stop])


def make_windows(records: list[SegRecord], window: int) -> Windows:
    """Windows of every record (stride window // 2, see the module docstring)."""
    rows: dict[str, list] = {k: [] for k in ("signal", "lead_mask", "labels", "valid")}
    record, starts = [], []
    for r, rec in enumerate(records):
        length = rec.labels.shape[0]
        for s in window_starts(length, window, max(1, window // 2)).tolist():
            n = min(window, length - s)
            sig = np.zeros((rec.signal.shape[0], window), np.float32)
            sig[:, :n] = rec.signal[:, s : s + n]
            lab = np.zeros(window, np.int32)
            lab[:n] = rec.labels[s : s + n]
            rows["signal"].append(sig)
            rows["lead_mask"].append(rec.lead_mask)
            rows["labels"].append(lab)
            rows["valid"].append(np.arange(window) < n)
            record.append(r)
            starts.append(s)
    return Windows(
        **{k: np.stack(v) for k, v in rows.items()},
        record=np.asarray(record, np.int32),
        start=np.asarray(starts, np.int32),
    )


def stitch(probs: np.ndarray, windows: Windows, lengths: list[int]) -> list[np.ndarray]:
    """Window probabilities (N, W, 4) -> per record (S_r,) int labels: the argmax of the mean
    probability over the windows covering each sample (windows overlap by half)."""
    sums = [np.zeros((n, probs.shape[-1]), np.float64) for n in lengths]
    counts = [np.zeros(n, np.int64) for n in lengths]
    for p, r, s, v in zip(probs, windows.record, windows.start, windows.valid):
        n = int(v.sum())
        sums[r][s : s + n] += p[:n]
        counts[r][s : s + n] += 1
    if any((c == 0).any() for c in counts):
        raise RuntimeError("a sample of a record is covered by no window")
    return [np.argmax(s / c[:, None], axis=1) for s, c in zip(sums, counts)]
