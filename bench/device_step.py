"""Samples/s and MFU of the accelerator presets' training step on this machine's devices, and
the Grain pipeline's rate against the step's. Run through bench/device.sh.

    PYTHONPATH=. python bench/device_step.py --data PREPARED_DIR [--presets A,B] [--tiny]
        [--dtypes float32,bfloat16] [--steps 20] [--warmup 3] [--per-device-batch N]
        [--out bench/results/device_<kind>.json]

Per preset and compute dtype: the step `acl_jax.train.step.make_train_step` builds (as
acl_jax.train.loop drives it: model and optimizer replicated, batch split over "data" across
every local device) on one fixed device batch from the pipeline; after --warmup steps, --steps
steps are timed to the last one's completion. samples/s = batch x steps / seconds. FLOPs per
step come from XLA's cost analysis of the same step lowered for this device; MFU = FLOPs per
step / step seconds / (devices x the device's peak FLOP/s, `PEAK_TFLOPS`). The pipeline
(`acl_jax.data.pipeline.train_dataset`, the preset's window, batch and prefetch) is timed over
--steps batches on the host: `pipeline_vs_step` > 1 means the input keeps up with the step.

The batch is --per-device-batch x local devices (default: the preset's global batch / 32, i.e.
what one chip of the 32-chip slice the preset is sized for holds). --tiny: a tiny ACL-ECG
config (configs/tiny.py shrunk) in seconds on a CPU, to test this script end to end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]

import jax  # noqa: E402
import numpy as np  # noqa: E402
import presets  # noqa: E402
from flax import nnx  # noqa: E402

from acl_jax.config import Config, ModelConfig, load_config  # noqa: E402
from acl_jax.data import pipeline  # noqa: E402
from acl_jax.objectives import build_pretrainer  # noqa: E402
from acl_jax.train.optim import make_optimizer  # noqa: E402
from acl_jax.train.step import DATA_AXIS, make_mesh, make_train_step, place_model, shard_batch  # noqa: E402,E501

# Dense peak TFLOP/s per chip (no sparsity), keyed by a substring of jax's device_kind.
# float32: JAX's default matmul/convolution precision runs float32 as TF32 on NVIDIA tensor
# cores (Ampere and later) and as one bfloat16 pass on TPUs, so those are the float32 peaks.
# Sources: NVIDIA A100 datasheet (SXM: BF16 312, TF32 156), H100 datasheet (SXM: BF16 989,
# TF32 495; H200 has the same compute), Google Cloud TPU system-architecture pages (bf16 per
# chip: v4 275, v5e 197, v5p 459, v6e 918). Order matters: the first matching key wins.
PEAK_TFLOPS = {
    "H200": {"float32": 494.7, "bfloat16": 989.4},
    "H100": {"float32": 494.7, "bfloat16": 989.4},
    "A100": {"float32": 156.0, "bfloat16": 312.0},
    "TPU v6": {"float32": 918.0, "bfloat16": 918.0},  # v6e (Trillium), kind "TPU v6 lite"
    "TPU v5 lite": {"float32": 197.0, "bfloat16": 197.0},  # v5e
    "TPU v5e": {"float32": 197.0, "bfloat16": 197.0},
    "TPU v5": {"float32": 459.0, "bfloat16": 459.0},  # v5p
    "TPU v4": {"float32": 275.0, "bfloat16": 275.0},
}


def peak_tflops(kind: str, dtype: str) -> float | None:
    """The device's peak for `dtype`, or None when the kind is not in the table (e.g. CPU)."""
    for key, peaks in PEAK_TFLOPS.items():
        if key.lower() in kind.lower():
            return peaks[dtype]
    return None


def tiny_config(data_dir: str) -> Config:
    """configs/tiny.py made smaller still: a CPU runs its step in milliseconds."""
    cfg = load_config(os.path.join(REPO, "configs", "tiny.py"))
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, dir=data_dir, batch_size=8, window=250),
        model=ModelConfig(widths=(8, 16), blocks=(1, 1), proj_hidden=32, proj_dim=16),
    )


def host_batches(cfg: Config, n: int) -> tuple[list[dict], float]:
    """n pipeline batches and the pipeline's records/s over them (after the first batch)."""
    it = iter(
        pipeline.train_dataset(
            cfg.data.dir,
            cfg.data.train_split,
            window=cfg.data.window,
            max_beats=cfg.data.max_beats,
            batch_size=cfg.data.batch_size,
            seed=cfg.seed,
            num_workers=cfg.data.num_workers,
            prefetch=cfg.data.prefetch,
        )
    )
    first = [next(it)]
    t0 = time.perf_counter()
    rest = [next(it) for _ in range(n)]
    seconds = time.perf_counter() - t0
    return first + rest, cfg.data.batch_size * n / seconds


def measure(cfg: Config, fs: int, steps: int, warmup: int) -> dict:
    """One preset x dtype on all local devices: see the module docstring."""
    mesh = make_mesh(jax.local_devices())
    batches, pipeline_rate = host_batches(cfg, steps)
    with jax.set_mesh(mesh):
        model = build_pretrainer(cfg, fs=fs, bn_axis=DATA_AXIS, rngs=nnx.Rngs(cfg.seed))
        place_model(model, mesh)
        tx, _ = make_optimizer(cfg.optim, cfg.data.batch_size, cfg.train.steps)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        step = make_train_step(mesh, cfg.seed)
        batch = shard_batch(batches[0], mesh)
        # FLOPs of the lowered step (XLA's HLO cost analysis before optimization: within 0.2%
        # of the compiled figure on CPU) so that the step is compiled once, by its first call.
        analysis = step.lower(model, optimizer, batch, np.int32(1)).cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
        flops = float(analysis.get("flops", float("nan")))
        t0 = time.perf_counter()
        metrics = jax.block_until_ready(step(model, optimizer, batch, np.int32(1)))
        compile_s = time.perf_counter() - t0
        for i in range(1, warmup):
            metrics = step(model, optimizer, batch, np.int32(i + 1))
        jax.block_until_ready(metrics)
        t0 = time.perf_counter()
        for i in range(steps):
            metrics = step(model, optimizer, batch, np.int32(warmup + i + 1))
        jax.block_until_ready(metrics)
        seconds = time.perf_counter() - t0
    step_s = seconds / steps
    kind = jax.local_devices()[0].device_kind
    peak = peak_tflops(kind, cfg.model.dtype)
    samples_per_s = cfg.data.batch_size / step_s
    return {
        "dtype": cfg.model.dtype,
        "batch": cfg.data.batch_size,
        "devices": len(jax.local_devices()),
        "window": cfg.data.window,
        "first_step_s": round(compile_s, 2),  # compile included
        "step_s": step_s,
        "samples_per_s": samples_per_s,
        "flops_per_step": flops,
        "peak_tflops_per_device": peak,
        "mfu": None if peak is None else flops / step_s / (peak * 1e12 * mesh.size),
        "pipeline_records_per_s": pipeline_rate,
        "pipeline_vs_step": pipeline_rate / samples_per_s,
        "loss_finite": bool(np.isfinite(float(metrics["loss"]))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="prepared data (500 Hz for the presets)")
    ap.add_argument("--presets", default=",".join(presets.PRESETS))
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--per-device-batch", type=int, default=0, help="0: preset batch / 32")
    ap.add_argument("--tiny", action="store_true", help="tiny CPU config (tests this script)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 1:
        ap.error(f"--steps ({args.steps}) and --warmup ({args.warmup}) must be >= 1")
    fs = int(pipeline.read_manifest(args.data)["fs"])
    kind = jax.local_devices()[0].device_kind
    n_dev = len(jax.local_devices())
    rows = []
    names = ["tiny"] if args.tiny else args.presets.split(",")
    for name in names:
        base = tiny_config(args.data) if args.tiny else presets.load_preset(name)
        if not args.tiny and fs != presets.PRESET_FS:
            raise SystemExit(f"--data {args.data} is at {fs} Hz; the presets need --fs 500 data")
        pod_share = base.data.batch_size // (1 if args.tiny else presets.POD_DEVICES)
        per_device = args.per_device_batch or max(pod_share // n_dev, 1)
        dtypes = args.dtypes.split(",")
        if base.objective == "clear":
            dtypes = ["float32"]  # CLEAR's transformer computes in float32 (model.dtype unused)
        for dtype in dtypes:
            cfg = dataclasses.replace(
                base,
                data=dataclasses.replace(base.data, dir=args.data, batch_size=per_device * n_dev),
                model=dataclasses.replace(base.model, dtype=dtype),
            )
            row = {"preset": name, **measure(cfg, fs, args.steps, args.warmup)}
            rows.append(row)
            mfu = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
            print(
                f"{name:<20}{dtype:>9}  batch {row['batch']:>5}  {row['samples_per_s']:>10.1f} "
                f"samples/s  MFU {mfu:>6}  pipeline {row['pipeline_records_per_s']:>9.1f} "
                f"records/s ({row['pipeline_vs_step']:.2f}x the step)",
                flush=True,
            )
    slug = "".join(c if c.isalnum() else "_" for c in kind.lower()).strip("_")
    out = args.out or os.path.join(REPO, "bench", "results", f"device_{slug}.json")
    result = {
        "device_kind": kind,
        "platform": jax.default_backend(),
        "devices": n_dev,
        "jax": jax.__version__,
        "data": args.data,
        "fs": fs,
        "steps": args.steps,
        "warmup": args.warmup,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
