"""Per-record conversion (read -> preprocess -> R-peaks -> encode) and its parallel driver.

`convert_one` runs in worker processes: it returns the encoded record plus the few numbers the
parent needs for the manifest (lead sums for normalization statistics, labels, patient), or a
skip reason. `convert_iter` yields results in input order whatever the number of workers, so
the shards the parent writes are byte-identical for any `--workers`.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from acl_jax.data import record as record_lib
from acl_jax.data.sources import BadRecord, SourceRecord

READERS = {
    "ptbxl": "acl_jax.data.ptbxl",
    "cinc": "acl_jax.data.cinc",
    "wfdb": "acl_jax.data.wfdb_folder",
}
STAGES = ("read", "preprocess", "qrs", "encode")


@dataclass(frozen=True)
class ConvertConfig:
    dataset: str  # key of READERS
    fs: int
    highpass_hz: float | None  # None: no high-pass
    lowpass_hz: float | None


@dataclass
class Converted:
    """One record's outcome; `blob` is None exactly when `reason` says why it was skipped."""

    id: str
    blob: bytes | None = None
    reason: str | None = None
    patient: str = ""
    labels: dict[str, list[str]] = field(default_factory=dict)
    lead_sum: list[int] = field(default_factory=list)  # (12,) sum of uV over present leads
    lead_sumsq: list[int] = field(default_factory=list)  # (12,) sum of uV^2
    lead_n: list[int] = field(default_factory=list)  # (12,) samples counted (0: lead absent)
    num_clipped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, for bench/prepare.py


def reader_module(dataset: str):
    if dataset not in READERS:
        raise ValueError(f"unknown --dataset {dataset!r}; choose from {sorted(READERS)}")
    return importlib.import_module(READERS[dataset])


def lead_sums(signal_uv: np.ndarray, lead_mask: np.ndarray) -> tuple[list, list, list]:
    """Exact integer sums over present leads of a (12, T) int16 signal: order-independent,
    so statistics merged over shards/workers come out identical."""
    x = signal_uv.astype(np.int64)
    present = np.asarray(lead_mask) > 0
    s = np.where(present, x.sum(axis=1), 0)
    ss = np.where(present, (x * x).sum(axis=1), 0)
    n = np.where(present, x.shape[1], 0)
    return [int(v) for v in s], [int(v) for v in ss], [int(v) for v in n]


def convert_one(rec: SourceRecord, cfg: ConvertConfig) -> Converted:
    """Converts one source record. Never raises for a bad record: returns a skip reason."""
    from acl_jax.data import preprocess, qrs  # imported here: spawned workers import lazily

    seconds = dict.fromkeys(STAGES, 0.0)
    t0 = time.perf_counter()
    stage = "read"
    try:
        signal, lead_names, src_fs = reader_module(cfg.dataset).load_signal(rec)
        t1 = time.perf_counter()
        seconds["read"] = t1 - t0
        stage = "preprocess"
        pcfg = preprocess.PreprocessConfig(
            fs=cfg.fs, highpass_hz=cfg.highpass_hz, lowpass_hz=cfg.lowpass_hz
        )
        p = preprocess.process(signal, lead_names, src_fs, pcfg)
        t2 = time.perf_counter()
        seconds["preprocess"] = t2 - t1
        stage = "qrs"
        rpeaks = qrs.detect_rpeaks(p.signal_mv, cfg.fs, p.lead_mask)
        t3 = time.perf_counter()
        seconds["qrs"] = t3 - t2
        stage = "encode"
        blob = record_lib.encode(
            {
                "id": rec.id,
                "patient": rec.patient,
                "dataset": rec.dataset,
                "fold": rec.fold,
                "fs": cfg.fs,
                "orig_fs": float(src_fs),
                "signal": p.signal_uv,
                "lead_mask": p.lead_mask,
                "rpeaks": rpeaks,
                "age": rec.age,
                "sex": rec.sex,
                "codes": rec.codes,
                "labels": rec.labels,
            }
        )
        s, ss, n = lead_sums(p.signal_uv, p.lead_mask)
        seconds["encode"] = time.perf_counter() - t3
    except BadRecord as e:
        return Converted(rec.id, reason=f"{stage}: {e}", seconds=seconds)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop a 20k-record run;
        # the skip list and --max-skip-fraction make systematic failures loud.
        return Converted(
            rec.id, reason=f"{stage}: unexpected {type(e).__name__}: {e}", seconds=seconds
        )
    return Converted(
        rec.id,
        blob=blob,
        patient=rec.patient,
        labels=rec.labels,
        lead_sum=s,
        lead_sumsq=ss,
        lead_n=n,
        num_clipped=int(p.num_clipped),
        seconds=seconds,
    )


def convert_chunk(recs: Sequence[SourceRecord], cfg: ConvertConfig) -> list[Converted]:
    return [convert_one(r, cfg) for r in recs]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: the worker ends when the process that started it does, also on
    `kill -9` (a worker blocked on the task queue would otherwise live on: it holds both ends of
    that pipe, so it never sees end-of-file). Linux: the kernel sends SIGKILL (prctl
    PR_SET_PDEATHSIG); elsewhere a thread polls the parent pid."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def convert_iter(
    records: Sequence[SourceRecord], cfg: ConvertConfig, workers: int, chunk_size: int = 8
) -> Iterator[Converted]:
    """Yields `convert_one(r)` for every record, in order.

    workers > 1 uses a spawned process pool (spawn, not fork: the parent may already run JAX
    threads, and fork after threads can deadlock) whose workers die with this process, with a
    bounded window of in-flight chunks so memory stays flat however far the workers run ahead
    of the shard writer.
    """
    if workers <= 1:
        for r in records:
            yield convert_one(r, cfg)
        return
    chunks = (records[i : i + chunk_size] for i in range(0, len(records), chunk_size))
    ctx = multiprocessing.get_context("spawn")
    parent = (os.getpid(),)
    with ProcessPoolExecutor(workers, ctx, initializer=die_with_parent, initargs=parent) as pool:
        # range first: zip would otherwise pull (and drop) one chunk too many.
        window = zip(range(4 * workers), chunks)
        pending = deque(pool.submit(convert_chunk, c, cfg) for _, c in window)
        while pending:
            done = pending.popleft().result()
            nxt = next(chunks, None)
            if nxt is not None:
                pending.append(pool.submit(convert_chunk, nxt, cfg))
            yield from done
