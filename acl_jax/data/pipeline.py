"""Grain input pipelines over prepared ArrayRecord shards (layout, batches: docs/contracts.md).

Train: record indices shuffled (reshuffled every epoch) -> repeat -> crop draw -> per-process
slice -> batch -> read + decode + crop the whole batch. The crop RNG is keyed on the element's
global position in the shuffled stream, so batches depend only on the seed: not on the worker
count, and the union of the per-process streams is the single-process stream. The iterator is
checkpointable (get_state/set_state, and Orbax via grain.checkpoint.CheckpointSave/Restore).

Eval: every record once, sliding windows, a per-process slice, batches padded with valid=False
rows so that every process yields the same number of batches (collectives run in lock-step).
"""

from __future__ import annotations

import functools
import json
import math
import os
from typing import Any

import grain
import jax
import numpy as np
from etils import epath
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from acl_jax.data.record import decode
from acl_jax.data.windows import collate, crop_example, crop_start, window_starts

_PREPARE_HINT = "run `python -m acl_jax.prepare` to create it"


def read_manifest(data_dir: str) -> dict:
    """Loads DATA_DIR/manifest.json; a missing or corrupt file names the dir and the fix."""
    # epath: the same code reads local paths and gs:// (with gcsfs installed; docs/gcs.md).
    path = epath.Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no prepared data in {data_dir!r} ({path} is missing): {_PREPARE_HINT}"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e}): {_PREPARE_HINT} again") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise ValueError(f"{path} has no 'splits' mapping: {_PREPARE_HINT} again")
    return manifest


def split_paths(data_dir: str, split: str) -> list[str]:
    """Absolute shard paths of `split` in manifest order (record index = position over them)."""
    splits = read_manifest(data_dir)["splits"]
    if split not in splits:
        raise ValueError(
            f"split {split!r} is not in {data_dir}/manifest.json; available: {sorted(splits)}"
        )
    paths = [os.path.join(data_dir, rel) for rel in splits[split]["shards"]]
    missing = [p for p in paths if not epath.Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"shards of split {split!r} are missing: {missing}: {_PREPARE_HINT}"
        )
    return paths


def _source(data_dir: str, split: str) -> grain.sources.ArrayRecordDataSource:
    return grain.sources.ArrayRecordDataSource(split_paths(data_dir, split))


def _check_process(process_index: int, process_count: int) -> None:
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, process_count={process_count})")


def _draw_crop(index: int, rng: np.random.Generator, *, pool: np.ndarray) -> tuple[int, float]:
    # Later epochs get indices >= len (Grain wraps them), hence the modulo. The crop position is
    # drawn as a fraction in [0, 1) because the record length is only known after reading.
    return int(pool[index % len(pool)]), rng.random()


def _load_train_batch(items, *, source, window, max_beats) -> dict[str, np.ndarray]:
    """(record indices (b,), crop fractions (b,)) -> a train batch. Records are read with one
    batched ArrayRecord call, which fetches shards in parallel threads outside the GIL."""
    indices, fractions = items
    raws = source.__getitems__(indices.tolist())
    examples = []
    for index, u, raw in zip(indices.tolist(), fractions.tolist(), raws):
        rec = decode(raw)
        start = crop_start(rec["signal"].shape[1], window, u)
        examples.append(crop_example(rec, index, start, window, max_beats))
    return collate(examples, window)


def train_dataset(
    data_dir: str,
    split: str,
    *,
    window: int,
    max_beats: int,
    batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    num_workers: int = 0,
    prefetch: int = 4,
    records: np.ndarray | None = None,
) -> grain.IterDataset:
    """Infinite per-process batches: signal (b, 12, W) f32 mV, lead_mask (b, 12) f32,
    rpeaks (b, K) i32, patient (b,) i32, record (b,) i32, with b = batch_size (per process).

    records: (n,) positions in the split to draw from (default: every record, in which case
    the stream is that of records=arange(N)). Fine-tuning on a label fraction passes its
    labelled records, so that a step reads b records and not b / fraction.
    """
    _check_process(process_index, process_count)
    if batch_size <= 0 or window <= 0 or max_beats <= 0:
        raise ValueError(
            f"batch_size ({batch_size}), window ({window}) and max_beats "
            f"({max_beats}) must be positive"
        )
    source = _source(data_dir, split)
    if len(source) == 0:
        raise ValueError(f"split {split!r} in {data_dir} has no records")
    pool = np.arange(len(source)) if records is None else np.asarray(records, np.int64)
    if pool.ndim != 1 or not len(pool) or pool.min() < 0 or pool.max() >= len(source):
        raise ValueError(
            f"records: {len(pool)} positions in [{pool.min(initial=0)}, {pool.max(initial=0)}] "
            f"for split {split!r} of {data_dir} ({len(source)} records): pass a non-empty 1-D "
            f"array of positions in [0, {len(source)})"
        )
    # Only record indices go through shuffle/repeat/slice: reading and decoding happen per batch.
    ds = grain.MapDataset.range(len(pool)).seed(seed)
    ds = ds.shuffle().repeat()  # shuffle before repeat: a new permutation every epoch
    # Drawing crops before slicing keys the crop RNG on the global stream position.
    ds = ds.random_map(functools.partial(_draw_crop, pool=pool))
    ds = ds[process_index::process_count].batch(batch_size, drop_remainder=True)
    ds = ds.map(
        functools.partial(_load_train_batch, source=source, window=window, max_beats=max_beats)
    )
    # Threads overlap ArrayRecord reads (they release the GIL); the buffer counts batches.
    read = grain.ReadOptions(num_threads=min(prefetch, 4), prefetch_buffer_size=prefetch)
    it_ds = ds.to_iter_dataset(read)
    if num_workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return it_ds


def _eval_batch(i: int, *, source, table, batch_size, window, max_beats):
    rows = table[i * batch_size : (i + 1) * batch_size]
    # Windows of a record are adjacent in the table: read and decode each record once per batch.
    wanted = sorted({int(r) for r in rows[:, 0]})
    records = dict(zip(wanted, map(decode, source.__getitems__(wanted))))
    examples = []
    for rec_index, start, valid in rows.tolist():
        ex = crop_example(records[rec_index], rec_index, start, window, max_beats)
        ex["window"] = np.int32(start)
        ex["valid"] = np.bool_(valid)
        examples.append(ex)
    return collate(examples, window)


def _decoded(source, chunk: int = 512):
    """Every record of `source` in order, decoded, read in parallel batches."""
    for lo in range(0, len(source), chunk):
        yield from map(decode, source.__getitems__(range(lo, min(lo + chunk, len(source)))))


def _record_lengths(source) -> np.ndarray:
    return np.array([rec["signal"].shape[1] for rec in _decoded(source)], np.int64)


def eval_windows(lengths: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(N,) record lengths -> (M, 2) int64 rows (record index, window start) in record order."""
    rows = [
        np.stack([np.full(len(s), r), s], axis=1)
        for r, s in enumerate(window_starts(int(n), window, stride) for n in lengths)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)


def process_window_table(
    windows: np.ndarray, batch_size: int, process_index: int, process_count: int
) -> np.ndarray:
    """(M, 2) global windows -> (n_batches * b, 3) rows (record, start, valid) of one process.

    Every process gets ceil(ceil(M / process_count) / b) batches; padding rows repeat a real
    window (the process's first one, or the global first one) with valid = 0.
    """
    mine = windows[process_index::process_count]
    n_batches = math.ceil(math.ceil(len(windows) / process_count) / batch_size)
    n_pad = n_batches * batch_size - len(mine)
    filler = mine[:1] if len(mine) else windows[:1]
    table = np.concatenate([mine, np.repeat(filler, n_pad, axis=0)])
    valid = np.arange(len(table)) < len(mine)
    return np.concatenate([table, valid[:, None].astype(np.int64)], axis=1)


def eval_dataset(
    data_dir: str,
    split: str,
    *,
    window: int,
    stride: int,
    max_beats: int,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> tuple[grain.IterDataset, int]:
    """Deterministic sliding-window batches (train keys plus window (b,) i32 start and valid (b,)
    bool) of every record once, and the number of real windows over all processes."""
    _check_process(process_index, process_count)
    if batch_size <= 0 or max_beats <= 0:
        raise ValueError(f"batch_size ({batch_size}) and max_beats ({max_beats}) must be positive")
    source = _source(data_dir, split)
    if len(source) == 0:
        raise ValueError(f"split {split!r} in {data_dir} has no records to evaluate")
    windows = eval_windows(_record_lengths(source), window, stride)
    table = process_window_table(windows, batch_size, process_index, process_count)
    fn = functools.partial(
        _eval_batch,
        source=source,
        table=table,
        batch_size=batch_size,
        window=window,
        max_beats=max_beats,
    )
    ds = grain.MapDataset.range(len(table) // batch_size).map(fn)
    read = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)
    return ds.to_iter_dataset(read), len(windows)


def split_metadata(data_dir: str, split: str) -> list[dict[str, Any]]:
    """Per record in split order: id, patient, dataset, fold, age, sex, codes, labels, length."""
    source = _source(data_dir, split)
    out = []
    for rec in _decoded(source):
        rec["length"] = int(rec["signal"].shape[1])
        for key in ("signal", "lead_mask", "rpeaks"):
            del rec[key]
        out.append(rec)
    return out


def to_global(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh, axis: str = "data"):
    """Per-process host batch -> dict of global jax.Arrays sharded on `axis` along dim 0
    (global batch = per-process batch x process count)."""
    sharding = NamedSharding(mesh, P(axis))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
