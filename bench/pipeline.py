"""Input-pipeline throughput: train windows/s (W = 250, 1000; batch 256; 0 and 2 workers) and eval
windows/s, compared with what the training step consumes (256 windows/step x 3 steps/s).

    .venv/bin/python bench/pipeline.py [--data PREPARED_DIR] [--split train] [--seconds 8]

Without --data it writes 13,000 synthetic 12 x 1000 int16 records (tests/shard_factory.py) to a
temporary directory. Prints a table and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from acl_jax.data import pipeline as pl  # noqa: E402


def _consumed_per_s() -> tuple[float, str]:
    """Windows/s one training step consumes: bench/train_step.py's measured JAX step rate for
    the real config when its results exist, else 256 windows x 3 steps/s (a generous bound)."""
    path = os.path.join(REPO, "bench", "results", "train_step.json")
    if os.path.isfile(path):
        with open(path) as f:
            rate = json.load(f)["results"]["real"]["samples_per_s"]["jax_step"]
        return float(rate), f"measured real-config step rate ({path})"
    return 256 * 3.0, "256 windows/step x 3 steps/s (no bench/results/train_step.json)"


CONSUMED_PER_S, CONSUMED_SOURCE = _consumed_per_s()
TARGET_RATIO = 20.0


def _rate(it, batch_size: int, seconds: float, warmup: int) -> tuple[float, float, int]:
    """(windows per wall second, windows per CPU second of this process, batches) after `warmup`
    batches (worker start-up excluded). The CPU rate is robust to other load on shared cores but
    misses the CPU time of worker processes."""
    for _ in range(warmup):
        next(it)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n * batch_size / wall, n * batch_size / max(cpu, 1e-9), n


def _row(mode, window, workers, batches, rate, cpu_rate) -> dict:
    return {
        "mode": mode,
        "window": window,
        "workers": workers,
        "batches": batches,
        "windows_per_s": rate,
        "windows_per_cpu_s": cpu_rate,
        "ratio_to_consumed": rate / CONSUMED_PER_S,
    }


def _synthetic(out_dir: str, n: int) -> None:
    from shard_factory import make_record, write_prepared

    rng = np.random.default_rng(0)
    records = [make_record(i, length=1000, rng=rng) for i in range(n)]
    write_prepared(out_dir, {"train": records}, num_shards=8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="prepared dir (default: synthetic 13,000 records)")
    p.add_argument("--split", default="train")
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per configuration")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "pipeline.json"))
    args = p.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags

    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_pipeline_")
        data = tmp.name
        t0 = time.perf_counter()
        _synthetic(data, 13_000)
        print(f"wrote 13,000 synthetic records in {time.perf_counter() - t0:.1f} s to {data}")
    n_records = pl.read_manifest(data)["splits"][args.split]["num_records"]

    rows = []
    for window in (250, 1000):
        for workers in (0, 2):
            it = iter(
                pl.train_dataset(
                    data,
                    args.split,
                    window=window,
                    max_beats=16,
                    batch_size=256,
                    seed=0,
                    num_workers=workers,
                )
            )
            rate, cpu_rate, n = _rate(it, 256, args.seconds, warmup=3)
            del it  # stops the worker processes before the next configuration
            # Worker CPU time is not this process's: no per-CPU rate with workers.
            rows.append(_row("train", window, workers, n, rate, cpu_rate if workers == 0 else None))
    for window in (250, 1000):
        ds, total = pl.eval_dataset(
            data, args.split, window=window, stride=window, max_beats=16, batch_size=256
        )
        rate, cpu_rate, n = _rate(iter(ds), 256, args.seconds, warmup=1)
        rows.append(_row("eval", window, 0, n, rate, cpu_rate) | {"windows_total": total})

    load = os.getloadavg()
    print(
        f"\n{'mode':<6}{'W':>6}{'workers':>9}{'windows/s':>12}{'x consumed':>12}{'win/cpu-s':>12}"
    )
    for r in rows:
        cpu = "-" if r["windows_per_cpu_s"] is None else f"{r['windows_per_cpu_s']:,.0f}"
        print(
            f"{r['mode']:<6}{r['window']:>6}{r['workers']:>9}{r['windows_per_s']:>12,.0f}"
            f"{r['ratio_to_consumed']:>11.1f}x{cpu:>12}"
        )
    print(
        f"(consumed = {CONSUMED_PER_S:.0f} windows/s, {CONSUMED_SOURCE}; target >= "
        f"{TARGET_RATIO:.0f}x; 1-min load average {load[0]:.1f} on {os.cpu_count()} cpus)"
    )
    result = {
        "data": args.data or "synthetic: 13,000 records, 12 x 1000 int16, 100 Hz",
        "num_records": n_records,
        "batch_size": 256,
        "consumed_windows_per_s": CONSUMED_PER_S,
        "consumed_source": CONSUMED_SOURCE,
        "target_ratio": TARGET_RATIO,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_end": load[0],
        },
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
