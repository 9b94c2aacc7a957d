"""Numpy window logic shared by the train and eval pipelines: crops, window starts, R-peak remap.

`crop_example` works on one decoded record (acl_jax.data.record.decode); `collate` turns a list
of examples into a batch of the schema in docs/contracts.md:
  signal (b, 12, W) float32 mV, lead_mask (b, 12) float32, rpeaks (b, K) int32 window-relative,
  sorted, padded with -1, patient (b,) int32, record (b,) int32.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from acl_jax.data.record import UV_PER_MV


def patient_hash(patient: str, record_id: str) -> np.int32:
    """Stable int31 id of a patient; records without a patient are their own patient.

    crc32 (not Python's hash) so that the value is the same in every process and run.
    """
    key = patient if patient else record_id
    return np.int32(zlib.crc32(key.encode("utf-8")) & 0x7FFFFFFF)


def crop_start(length: int, window: int, fraction: float) -> int:
    """Crop start for a uniform `fraction` in [0, 1): uniform over [0, length - window];
    0 when the record is not longer than W."""
    if length <= window:
        return 0
    return int(fraction * (length - window + 1))


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Starts 0, stride, 2*stride, ... of windows inside the record, plus one last window aligned
    to the end when the strided ones do not reach it. Records not longer than W give [0]."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if length <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, length - window + 1, stride)
    if starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts


def window_rpeaks(rpeaks: np.ndarray, start: int, window: int, max_beats: int) -> np.ndarray:
    """(N,) sorted record R-peaks -> (K,) int32 peaks inside [start, start + W) relative to
    `start`, sorted ascending, truncated to K and padded with -1."""
    lo, hi = np.searchsorted(rpeaks, [start, start + window])
    rel = rpeaks[lo : min(hi, lo + max_beats)] - start
    out = np.full(max_beats, -1, np.int32)
    out[: rel.shape[0]] = rel
    return out


def crop_example(
    rec: dict[str, Any], record_index: int, start: int, window: int, max_beats: int
) -> dict[str, np.ndarray]:
    """One example from a decoded record and a window start; the signal stays an int16 (12, <=W)
    view so that `collate` converts and pads it once, straight into the batch array."""
    return {
        "signal": rec["signal"][:, start : start + window],
        "lead_mask": rec["lead_mask"],
        "rpeaks": window_rpeaks(rec["rpeaks"], start, window, max_beats),
        "patient": patient_hash(rec["patient"], rec["id"]),
        "record": np.int32(record_index),
    }


def collate(examples: Sequence[dict[str, np.ndarray]], window: int) -> dict[str, np.ndarray]:
    """Examples of `crop_example` (plus any scalar keys) -> a batch: signal (b, 12, W) float32 mV
    zero-padded on the right, lead_mask (b, 12) float32, the other keys stacked."""
    b, n_leads = len(examples), examples[0]["signal"].shape[0]
    signal = np.zeros((b, n_leads, window), np.float32)
    for row, ex in zip(signal, examples):
        row[:, : ex["signal"].shape[1]] = ex["signal"]
    signal /= np.float32(UV_PER_MV)
    batch = {"signal": signal}
    batch["lead_mask"] = np.stack([ex["lead_mask"] for ex in examples]).astype(np.float32)
    for key in examples[0]:
        if key not in batch:
            batch[key] = np.stack([ex[key] for ex in examples])
    return batch
