"""Writes real prepared-data dirs (ArrayRecord shards + manifest.json) from generated records.

The layout follows docs/contracts.md, so tests and benchmarks exercise the same files that
`python -m acl_jax.prepare` writes, without depending on that CLI:

    OUT/manifest.json
    OUT/<split>/<split>-00000-of-0000N.array_record

Generated signals are flat (small noise) with a spike of `SPIKE_UV` on every lead at each R-peak,
so a test can check that a cropped window has spikes exactly at the reported peaks.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter

from acl_jax.data.record import encode
from acl_jax.leads import LEADS, NUM_LEADS

SPIKE_UV = 2000  # R-peak amplitude; the noise stays below NOISE_UV, far from it
NOISE_UV = 50


def make_record(
    index: int,
    *,
    length: int,
    rng: np.random.Generator,
    dataset: str = "synth",
    patient: str | None = None,
    fold: int = 1,
    beat_every: int = 80,
    labels: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """One record dict for `encode`: signal int16 (12, length) uV with spikes at `rpeaks`."""
    signal = rng.integers(-NOISE_UV, NOISE_UV, size=(NUM_LEADS, length), dtype=np.int16)
    first = int(rng.integers(0, beat_every)) if length > 0 else 0
    rpeaks = np.arange(first, length, beat_every, dtype=np.int32)
    # Jitter beat positions so windows at different offsets look different.
    rpeaks = np.unique(np.clip(rpeaks + rng.integers(-5, 6, rpeaks.shape), 0, length - 1))
    signal[:, rpeaks] = SPIKE_UV
    lead_mask = np.ones(NUM_LEADS, np.uint8)
    if index % 5 == 4:  # some records miss a lead, as real data does
        lead_mask[index % NUM_LEADS] = 0
        signal[index % NUM_LEADS] = 0
    return {
        "id": f"{dataset}/{index:05d}",
        "patient": f"p{index // 2}" if patient is None else patient,
        "dataset": dataset,
        "fold": fold,
        "fs": 100,
        "orig_fs": 100.0,
        "signal": signal,
        "lead_mask": lead_mask,
        "rpeaks": rpeaks.astype(np.int32),
        "age": float(20 + index % 60),
        "sex": "MF"[index % 2],
        "codes": {"NORM": 100.0} if index % 3 else {"IMI": 50.0},
        "labels": labels
        if labels is not None
        else {"superdiagnostic": ["NORM" if index % 3 else "MI"]},
    }


def write_split(out_dir: str, split: str, records: Sequence[dict], num_shards: int) -> list[str]:
    """Writes `records` (sorted by id, as prepare does) over `num_shards` shards; returns the
    shard paths relative to `out_dir` in manifest order."""
    records = sorted(records, key=lambda r: r["id"])
    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    per_shard = math.ceil(len(records) / num_shards) if records else 0
    rel_paths = []
    for s in range(num_shards):
        rel = f"{split}/{split}-{s:05d}-of-{num_shards:05d}.array_record"
        writer = ArrayRecordWriter(os.path.join(out_dir, rel), "group_size:1")
        for rec in records[s * per_shard : (s + 1) * per_shard]:
            writer.write(encode(rec))
        writer.close()
        rel_paths.append(rel)
    return rel_paths


def write_prepared(
    out_dir: str, splits: dict[str, Sequence[dict]], *, num_shards: int = 2, fs: int = 100
) -> dict:
    """Writes every split and a manifest.json as in docs/contracts.md; returns the manifest."""
    manifest_splits, counts = {}, {}
    for split, records in splits.items():
        shards = write_split(out_dir, split, records, num_shards)
        manifest_splits[split] = {
            "num_records": len(records),
            "shards": shards,
            "num_patients": len({r["patient"] or r["id"] for r in records}),
        }
        split_counts: dict[str, int] = {}
        for r in records:
            for c in r["labels"].get("superdiagnostic", []):
                split_counts[c] = split_counts.get(c, 0) + 1
        counts[split] = split_counts
    manifest = {
        "version": 1,
        "code_version": "test",
        "source": {"dataset": "synth", "src": "tests/shard_factory.py", "args": {}},
        "fs": fs,
        "leads": list(LEADS),
        "splits": manifest_splits,
        "tasks": {
            "superdiagnostic": {
                "classes": sorted({c for sc in counts.values() for c in sc}),
                "counts": counts,
            }
        },
        "lead_stats": {"mean_uv": [0.0] * NUM_LEADS, "std_uv": [100.0] * NUM_LEADS},
        "skipped": [],
        "num_clipped_samples": 0,
        "created": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def synthetic_dir(
    out_dir: str,
    sizes: dict[str, int],
    *,
    length: int | Sequence[int] = 400,
    seed: int = 0,
    num_shards: int = 2,
) -> dict:
    """Generates `sizes[split]` records per split (lengths cycle through `length`) and writes them.

    Record ids are unique across splits; returns the manifest.
    """
    lengths = [length] if isinstance(length, int) else list(length)
    rng = np.random.default_rng(seed)
    splits, start = {}, 0
    for split, n in sizes.items():
        splits[split] = [
            make_record(start + i, length=lengths[(start + i) % len(lengths)], rng=rng)
            for i in range(n)
        ]
        start += n
    return write_prepared(out_dir, splits, num_shards=num_shards)
