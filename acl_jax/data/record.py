"""The on-disk record: one preprocessed ECG, msgpack-encoded, one ArrayRecord entry each.

Fields (all required; `encode` validates them, `decode` returns numpy arrays):
  id         str    globally unique, "<dataset>/<source id>", e.g. "ptbxl/00001"
  patient    str    patient id within the dataset ("" when unknown: then id is used)
  dataset    str    "ptbxl", "cpsc2018", "cpsc_extra", "georgia", "chapman_ningbo", "ptb",
                    "incart", "cinc", "wfdb"
  fold       int    source fold (PTB-XL strat_fold), -1 when none
  fs         int    sampling rate of `signal` (Hz)
  orig_fs    float  sampling rate of the source file
  signal     (12, T) int16, microvolts, canonical lead order (acl_jax.leads.LEADS)
  lead_mask  (12,) uint8, 1 where the lead was present in the source (absent leads are zero)
  rpeaks     (N,) int32, R-peak sample indices into `signal`, sorted ascending
  age        float  years, NaN when unknown
  sex        str    "M", "F" or ""
  codes      {str: float} source statements with likelihood (PTB-XL SCP codes; SNOMED codes
             with likelihood 100.0 for CinC)
  labels     {task: [str]} derived task labels (PTB-XL: all, diagnostic, subdiagnostic,
             superdiagnostic, form, rhythm; CinC: snomed, snomed_scored; wfdb: dx)

int16 microvolts covers +-32.7 mV at 1 uV resolution (ECG amplifiers quantize at 1-5 uV), half
the bytes of float32, and decodes with one `np.frombuffer`.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from acl_jax.leads import NUM_LEADS

UV_PER_MV = 1000.0
FIELDS = (
    "id",
    "patient",
    "dataset",
    "fold",
    "fs",
    "orig_fs",
    "signal",
    "lead_mask",
    "rpeaks",
    "age",
    "sex",
    "codes",
    "labels",
)


def encode(rec: dict[str, Any]) -> bytes:
    """Serializes a record dict (numpy arrays for signal/lead_mask/rpeaks) to bytes."""
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise KeyError(f"record {rec.get('id', '?')!r} lacks fields {missing}")
    sig = np.asarray(rec["signal"])
    if sig.dtype != np.int16 or sig.ndim != 2 or sig.shape[0] != NUM_LEADS:
        raise ValueError(
            f"record {rec['id']!r}: signal must be int16 (12, T), got {sig.dtype} {sig.shape}"
        )
    mask = np.asarray(rec["lead_mask"], np.uint8)
    rpeaks = np.asarray(rec["rpeaks"], np.int32)
    if mask.shape != (NUM_LEADS,):
        raise ValueError(f"record {rec['id']!r}: lead_mask must be (12,), got {mask.shape}")
    age = float(rec["age"]) if rec["age"] is not None else math.nan
    payload = {
        "id": str(rec["id"]),
        "patient": str(rec["patient"]),
        "dataset": str(rec["dataset"]),
        "fold": int(rec["fold"]),
        "fs": int(rec["fs"]),
        "orig_fs": float(rec["orig_fs"]),
        "length": int(sig.shape[1]),
        "signal": np.ascontiguousarray(sig).tobytes(),
        "lead_mask": mask.tobytes(),
        "rpeaks": np.ascontiguousarray(rpeaks).tobytes(),
        "age": age,
        "sex": str(rec["sex"]),
        "codes": {str(k): float(v) for k, v in rec["codes"].items()},
        "labels": {str(k): [str(c) for c in v] for k, v in rec["labels"].items()},
    }
    return msgpack.packb(payload, use_bin_type=True)


def decode(raw: bytes) -> dict[str, Any]:
    """Inverse of `encode`: arrays come back as read-only numpy views of `raw`."""
    d = msgpack.unpackb(raw, raw=False)
    length = d.pop("length")
    d["signal"] = np.frombuffer(d["signal"], np.int16).reshape(NUM_LEADS, length)
    d["lead_mask"] = np.frombuffer(d["lead_mask"], np.uint8)
    d["rpeaks"] = np.frombuffer(d["rpeaks"], np.int32)
    return d


def to_microvolts(signal_mv: np.ndarray) -> tuple[np.ndarray, int]:
    """(12, T) float mV -> (int16 uV, number of clipped samples)."""
    uv = np.rint(np.asarray(signal_mv, np.float64) * UV_PER_MV)
    clipped = int(np.count_nonzero((uv > 32767) | (uv < -32768)))
    return np.clip(uv, -32768, 32767).astype(np.int16), clipped
