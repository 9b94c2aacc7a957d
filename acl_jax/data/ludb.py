"""Reader for LUDB (Lobachevsky University ECG delineation database, PhysioNet v1.0.1).

Each record is 12 leads x 10 s at 500 Hz with per-lead WFDB annotation files (.i, .ii, ...,
.v6) marking P, QRS and T waves as triplets `(`, symbol, `)` = onset, peak, offset with
symbols 'p', 'N' and 't'. Cardiologists annotated only a middle section of each record (about
the 2nd to 9th second), so accuracy must be scored inside `annotated_span` only: a beat
outside it is not a false positive, it is simply not annotated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import wfdb

from acl_jax.leads import LEAD_INDEX, LEADS, NUM_LEADS, canonical_lead

WAVE_LABELS = {"p": 1, "N": 2, "t": 3}  # wave_masks labels; 0 = no wave


@dataclass(frozen=True)
class LudbRecord:
    """signal: float64 (12, T) mV in canonical lead order; waves[lead] = [(symbol, onset, peak,
    offset)] in samples, onset/offset -1 when the annotation lacks them."""

    name: str
    signal: np.ndarray
    fs: float
    waves: dict[str, list[tuple[str, int, int, int]]] = field(default_factory=dict)


def _parse_waves(symbols: list[str], samples: np.ndarray) -> list[tuple[str, int, int, int]]:
    waves = []
    for k, sym in enumerate(symbols):
        if sym not in WAVE_LABELS:
            continue
        onset = int(samples[k - 1]) if k > 0 and symbols[k - 1] == "(" else -1
        offset = int(samples[k + 1]) if k + 1 < len(symbols) and symbols[k + 1] == ")" else -1
        waves.append((sym, onset, int(samples[k]), offset))
    return waves


def read_ludb(record_path: str) -> LudbRecord:
    """Reads one LUDB record (path without extension, e.g. ".../ludb/data/1")."""
    if not os.path.exists(record_path + ".hea"):
        raise FileNotFoundError(
            f"{record_path}.hea not found: pass the record path without extension, e.g. "
            "/tmp/acl_data/ludb/data/1"
        )
    sig, fields = wfdb.rdsamp(record_path)
    signal = np.zeros((NUM_LEADS, sig.shape[0]), np.float64)
    waves: dict[str, list[tuple[str, int, int, int]]] = {}
    for col, raw in enumerate(fields["sig_name"]):
        lead = canonical_lead(raw)
        if lead is None:
            raise ValueError(f"{record_path}.hea: unknown lead name {raw!r}")
        signal[LEAD_INDEX[lead]] = sig[:, col]
        ext = raw.strip().lower()
        if os.path.exists(f"{record_path}.{ext}"):
            ann = wfdb.rdann(record_path, ext)
            waves[lead] = _parse_waves(list(ann.symbol), np.asarray(ann.sample))
    if not waves:
        raise ValueError(f"{record_path}: no annotation files (.i, .ii, ... .v6) next to it")
    name = os.path.basename(record_path)
    return LudbRecord(name=name, signal=signal, fs=float(fields["fs"]), waves=waves)


def qrs_peaks(rec: LudbRecord, gap_s: float = 0.15) -> np.ndarray:
    """Reference R-peaks: consensus of the per-lead QRS ('N') peak annotations.

    All leads' QRS peaks are pooled and sorted; a jump larger than gap_s separates two beats
    (peaks of one beat differ between leads by tens of ms, beats are >= 200 ms apart). Each beat
    is the median of its pooled peaks, so one lead's outlier annotation does not move it.
    Returns sorted int32 (B,).
    """
    pooled = [w[2] for ws in rec.waves.values() for w in ws if w[0] == "N"]
    peaks = np.sort(np.asarray(pooled, np.int64))
    if peaks.size == 0:
        return np.zeros(0, np.int32)
    starts = np.flatnonzero(np.diff(peaks) > gap_s * rec.fs) + 1
    return np.asarray([int(np.median(g)) for g in np.split(peaks, starts)], np.int32)


def annotated_span(rec: LudbRecord, margin_s: float = 0.1) -> tuple[int, int]:
    """[start, stop) samples covering every annotated wave (any lead) plus margin_s each side."""
    pos = [s for ws in rec.waves.values() for w in ws for s in (w[1], w[2], w[3]) if s >= 0]
    margin = int(margin_s * rec.fs)
    return max(min(pos) - margin, 0), min(max(pos) + margin + 1, rec.signal.shape[1])


def wave_masks(rec: LudbRecord, lead: str) -> np.ndarray:
    """(T,) int8 labels of one lead: 0 none, 1 P, 2 QRS, 3 T over [onset, offset] inclusive.

    Waves lacking an onset or offset mark only their peak sample.
    """
    canon = canonical_lead(lead)
    if canon not in rec.waves:
        raise KeyError(f"lead {lead!r} has no annotations in record {rec.name}; have {LEADS}")
    mask = np.zeros(rec.signal.shape[1], np.int8)
    for sym, onset, peak, offset in rec.waves[canon]:
        lo = onset if onset >= 0 else peak
        hi = offset if offset >= 0 else peak
        mask[lo : hi + 1] = WAVE_LABELS[sym]
    return mask
