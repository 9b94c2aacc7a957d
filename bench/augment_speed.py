"""Jitted augmentation cost per batch: each op alone and the configured chain.

  python bench/augment_speed.py [--batch 256 --window 250 --fs 100 --repeats 100]

Prints a table (median and min ms per batch, share of the chain) and writes
bench/results/augment_speed.json. Compare with bench/train_step.py's step time: the chain
should be a small fraction of a step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from acl_jax.augment import View, augment_batch, make_augment
from acl_jax.augment.compose import REGISTRY
from acl_jax.config import AugmentConfig


def time_chain(ops: tuple[str, ...], view: View, fs: int, repeats: int) -> tuple[float, float]:
    fn = make_augment(dataclasses.replace(AugmentConfig(), ops=ops), fs)
    run = jax.jit(lambda k, v: augment_batch(fn, k, v))
    key = jax.random.key(0)
    jax.block_until_ready(run(key, view))
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(run(jax.random.fold_in(key, i), view))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window", type=int, default=250)
    p.add_argument("--fs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--out", default="bench/results/augment_speed.json")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    b, w, k = a.batch, a.window, 16
    rpeaks = np.full((b, k), -1, np.int32)
    beat = int(0.8 * a.fs)
    peaks = np.arange(beat // 4, w, beat, dtype=np.int32)[:k]
    rpeaks[:, : len(peaks)] = peaks
    view = View(
        jnp.asarray(rng.standard_normal((b, 12, w)), jnp.float32),
        jnp.asarray(rpeaks),
        jnp.ones((b, 12), jnp.float32),
    )
    rows = {}
    chain = AugmentConfig().ops
    for name in (*sorted(REGISTRY), "chain"):
        ops = chain if name == "chain" else (name,)
        rows[name] = dict(zip(("median_ms", "min_ms"), time_chain(ops, view, a.fs, a.repeats)))
    total = rows["chain"]["median_ms"]
    print(f"batch {b} x 12 x {w} at {a.fs} Hz; chain = {','.join(chain)}")
    print(f"{'op':<18}{'median ms':>10}{'min ms':>9}")
    for name, r in rows.items():
        print(f"{name:<18}{r['median_ms']:>10.2f}{r['min_ms']:>9.2f}")
    result = {
        "batch": b,
        "window": w,
        "fs": a.fs,
        "chain": list(chain),
        "ops": rows,
        "chain_median_ms": total,
        "load_average": os.getloadavg(),
        "devices": str(jax.devices()[0]),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
