"""Raw records in, prepared records out, by the very functions `acl_jax.prepare` runs.

Inputs: WFDB records (.hea + signal file), PhysioNet/CinC records (.hea + .mat) and .npy arrays
(mV, shape (L, T) or (T, L), with an explicit rate and lead names). A directory is searched
recursively; records come out in the order the paths were given, each directory's records
sorted by relative path. A record's id is its file stem ("00008_lr"); when two inputs share a
stem, the path without extension is used for those.

`prepare_signal` is the one preprocessing step: `preprocess.process` (lead mapping, resampling,
filters, int16 microvolt storage) then `qrs.detect_rpeaks`, called exactly as
`acl_jax.data.convert.convert_one` calls them, so a record's arrays are bit-identical to what
prepare writes into its shards (tests/test_inference.py checks it).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acl_jax.data import cinc, preprocess, qrs, wfdb_folder
from acl_jax.data.sources import BadRecord, SourceRecord

SIGNAL_SUFFIXES = (".dat", ".mat")


@dataclasses.dataclass(frozen=True)
class RawInput:
    """One record to read: `path` is the file (.hea or .npy); `id` its reported name."""

    id: str
    path: str


@dataclasses.dataclass(frozen=True)
class NpySpec:
    """How to read .npy inputs, which carry no header: rate (Hz) and lead names in row order."""

    fs: float | None = None
    leads: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A record as prepare stores it: signal (12, T) int16 uV, lead_mask (12,) uint8, rpeaks
    (N,) int32 (empty unless asked for), and notes on leads dropped on the way."""

    id: str
    signal: np.ndarray
    lead_mask: np.ndarray
    rpeaks: np.ndarray
    notes: tuple[str, ...] = ()


def _expand(path: Path) -> list[Path]:
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.suffix in (".hea", ".npy") and p.is_file()]
        return sorted(found, key=lambda p: p.relative_to(path).as_posix())
    if path.suffix in SIGNAL_SUFFIXES:  # a signal file stands for its record's header
        return [path.with_suffix(".hea")]
    return [path]


def find_inputs(paths: Sequence[str]) -> list[RawInput]:
    """The records under `paths` in the stated order (module docstring), without duplicates."""
    # dict/Counter, not list lookups: linear in the number of records (a folder of 20k).
    files = list(dict.fromkeys(f for p in paths for f in _expand(Path(p))))
    stems = collections.Counter(f.stem for f in files)
    return [
        RawInput(id=f.stem if stems[f.stem] == 1 else str(f.with_suffix("")), path=str(f))
        for f in files
    ]


def read_signal(inp: RawInput, npy: NpySpec) -> tuple[np.ndarray, list[str], float]:
    """((T, n) float64 mV, lead names, fs) with prepare's readers; BadRecord if unusable."""
    path = Path(inp.path)
    if path.suffix == ".npy":
        return _read_npy(path, npy)
    if path.suffix != ".hea":
        raise BadRecord(f"{path}: not a record (expected .hea, .dat, .mat or .npy)")
    if not path.is_file():
        raise BadRecord(f"{path}: no such header")
    hdr = wfdb_folder.read_header(path)
    if hdr.files and Path(hdr.files[0]).suffix.lower() == ".mat":
        rec = SourceRecord(id=inp.id, patient="", dataset="", path=str(path.with_suffix("")))
        return cinc.load_signal(rec)
    # wfdb_folder.load_signal's two steps, with the header parsed once (about 5% of embed).
    signal, names = wfdb_folder.read_signal(hdr)
    return signal, names, hdr.fs


def _read_npy(path: Path, npy: NpySpec) -> tuple[np.ndarray, list[str], float]:
    if npy.fs is None or not npy.leads:
        raise BadRecord(f"{path}: .npy inputs need --fs and --leads (names in row order)")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadRecord(f"{path}: unreadable .npy ({str(e).splitlines()[0]})") from None
    n = len(npy.leads)
    if x.ndim != 2 or n not in x.shape or not np.issubdtype(x.dtype, np.number):
        raise BadRecord(f"{path}: array {x.dtype}{list(x.shape)} is not ({n} leads, samples)")
    x = x.T if x.shape[0] == n and x.shape[1] != n else x  # readers give (T, n)
    return np.asarray(x, np.float64), list(npy.leads), float(npy.fs)


def prepare_signal(
    signal: np.ndarray,
    lead_names: list[str],
    fs: float,
    pcfg: preprocess.PreprocessConfig,
    *,
    rpeaks: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(signal (12, T') int16 uV, lead_mask (12,) uint8, rpeaks (N,) int32, notes) of a reader's
    (T, n) mV signal: prepare's preprocessing and R-peak detection (convert_one), nothing else."""
    p = preprocess.process(signal, lead_names, fs, pcfg)
    peaks = qrs.detect_rpeaks(p.signal_mv, pcfg.fs, p.lead_mask) if rpeaks else np.zeros(0)
    return p.signal_uv, p.lead_mask, np.asarray(peaks, np.int32), p.notes


def load_record(
    inp: RawInput,
    pcfg: preprocess.PreprocessConfig,
    *,
    window: int,
    rpeaks: bool,
    npy: NpySpec = NpySpec(),
) -> Prepared:
    """Reads and prepares one input; BadRecord (the reason, without the id) when it cannot be
    used: unreadable, no 12-lead name, NaN samples, or shorter than one `window`."""
    try:
        signal, names, fs = read_signal(inp, npy)
        sig, mask, peaks, notes = prepare_signal(signal, names, fs, pcfg, rpeaks=rpeaks)
    except BadRecord:
        raise
    except Exception as e:  # noqa: BLE001 - an odd file is one bad record, not a failed run
        raise BadRecord(f"unexpected {type(e).__name__}: {e}") from None
    if sig.shape[1] < window:
        raise BadRecord(
            f"too short: {sig.shape[1] / pcfg.fs:g} s at {pcfg.fs} Hz is less than one "
            f"{window / pcfg.fs:g} s window"
        )
    return Prepared(inp.id, sig, mask, peaks, notes)
