"""Encoder forward+backward time on XLA CPU: activation layout and compute dtype side by side.

Run: PYTHONPATH=. .venv/bin/python bench/encoder_layout.py [--reps 3]   (about 3 minutes)

Two workloads, each timed in four variants (layout "nwc" | "ncw" x dtype float32 | bfloat16):
  plain:     12-channel ResNet1d, widths (64,128,256,256), blocks (2,2,2,2), kernel 7,
             batch 64 x 12 x 2500 (the stack.md reference workload).
  lead_wise: ECGEncoder(ModelConfig()) (default widths, one shared single-lead ResNet1d),
             batch 256 x 12 x 250.
A step is jit(value_and_grad) of a scalar loss over the features w.r.t. the parameters in train
mode (BatchNorm batch statistics, updated statistics returned). Each variant is compiled and
run once (the warm-up); then the variants are timed round-robin (so load from other processes
on the shared cores hits them alike) and the median of `--reps` steps is reported, with its
ratio to the fastest variant of the same workload and the process CPU seconds per step (less
sensitive than wall time to other processes on shared cores). Prints a table and writes
bench/results/encoder_layout.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acl_jax.config import ModelConfig
from acl_jax.models import ECGEncoder

PLAIN = ModelConfig(lead_wise=False, widths=(64, 128, 256, 256), blocks=(2, 2, 2, 2), kernel=7)
LEAD_WISE = ModelConfig()
WORKLOADS = {"plain": (PLAIN, (64, 12, 2500)), "lead_wise": (LEAD_WISE, (256, 12, 250))}
VARIANTS = [(layout, dtype) for layout in ("nwc", "ncw") for dtype in ("float32", "bfloat16")]


def make_step(cfg: ModelConfig, layout: str, dtype: str):
    """Returns (jitted step(params, stats, x, mask) -> (loss, grads, stats), params, stats)."""
    model = ECGEncoder(
        dataclasses.replace(cfg, dtype=dtype),
        backbone_options={"layout": layout},
        rngs=nnx.Rngs(0),
    )
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

    def loss_fn(params, stats, x, mask):
        m = nnx.merge(graphdef, params, stats, copy=True)
        f = m(x, mask)
        loss = jnp.mean(f.global_**2)
        if f.regions is not None:
            loss = loss + jnp.mean(f.regions**2)
        return loss, nnx.state(m, nnx.BatchStat)

    @jax.jit
    def step(params, stats, x, mask):
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, mask)
        return loss, grads, new_stats

    n_params = sum(p.size for p in jax.tree.leaves(params))
    return step, params, stats, n_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="timed steps per variant")
    ap.add_argument("--out", default="bench/results/encoder_layout.json")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    results = {}
    for workload, (cfg, shape) in WORKLOADS.items():
        x = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
        mask = jnp.ones(shape[:2], jnp.float32)
        runs = {}
        for layout, dtype in VARIANTS:
            step, params, stats, n_params = make_step(cfg, layout, dtype)
            t0 = time.perf_counter()
            jax.block_until_ready(step(params, stats, x, mask))  # compile + first run
            first = time.perf_counter() - t0
            runs[(layout, dtype)] = dict(
                step=step,
                params=params,
                stats=stats,
                times=[],
                cpu=[],
                first_s=first,
                n_params=n_params,
            )
            print(f"{workload:9s} {layout} {dtype:8s} compile+first step {first:6.2f}s", flush=True)
        for _ in range(args.reps):
            for r in runs.values():
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(r["step"](r["params"], r["stats"], x, mask))
                r["times"].append(time.perf_counter() - t0)
                r["cpu"].append(time.process_time() - c0)
        medians = {k: statistics.median(r["times"]) for k, r in runs.items()}
        best = min(medians.values())
        results[workload] = {
            "config": dataclasses.asdict(cfg),
            "batch_shape": list(shape),
            "params": next(iter(runs.values()))["n_params"],
            "variants": [
                {
                    "layout": layout,
                    "dtype": dtype,
                    "median_s": medians[(layout, dtype)],
                    "ratio_to_fastest": medians[(layout, dtype)] / best,
                    "cpu_median_s": statistics.median(runs[(layout, dtype)]["cpu"]),
                    "times_s": runs[(layout, dtype)]["times"],
                    "compile_and_first_s": runs[(layout, dtype)]["first_s"],
                }
                for layout, dtype in VARIANTS
            ],
        }

    print(
        f"\n{'workload':10s} {'layout':6s} {'dtype':9s} {'median s/step':>13s} {'ratio':>6s} "
        f"{'CPU s/step':>10s}"
    )
    for workload, res in results.items():
        for v in res["variants"]:
            print(
                f"{workload:10s} {v['layout']:6s} {v['dtype']:9s} {v['median_s']:13.3f} "
                f"{v['ratio_to_fastest']:6.2f} {v['cpu_median_s']:10.3f}"
            )
        print(f"{'':10s} ({res['params']:,} params, batch {tuple(res['batch_shape'])})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "reps": args.reps,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out.write_text(json.dumps({"meta": meta, "workloads": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
