"""The accelerator presets: parameters, XLA cost of one training step, and the abstract step.

    PYTHONPATH=. .venv/bin/python bench/presets.py [--presets NAME,...] [--batch B]
        [--out bench/results/presets.json]

Per preset (configs/acl_ecg_500hz_1m.py, acl_ecg_500hz_10m.py, clear_500hz_57m.py) and compute
dtype: parameter counts (encoder and whole pretrainer) and XLA's cost analysis (FLOPs, bytes
accessed) of the FULL training step that `acl_jax.train.step.make_train_step` builds
(augmentation, encoder, loss, gradient, optimizer update), compiled for ONE CPU device at the
preset's global batch (or --batch). Nothing is allocated: the model and optimizer state are built
with `nnx.eval_shape`, and the step is lowered from `jax.ShapeDtypeStruct`s, so the 57M-parameter
CLEAR costs compile time only. The FLOPs are the whole global batch's (what 32 chips share).

The same abstract step is what tests/test_presets.py exports with `jax.export` for the "tpu"
and "cuda" platforms over an abstract 32-device mesh: a lowering problem shows up on a CPU
machine rather than on a rented pod. bench/device_step.py measures these presets on a device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from jax import P  # noqa: E402

from acl_jax.config import Config, load_config  # noqa: E402
from acl_jax.objectives import build_pretrainer  # noqa: E402
from acl_jax.train.optim import make_optimizer  # noqa: E402
from acl_jax.train.step import DATA_AXIS, make_train_step  # noqa: E402

PRESETS = {
    "acl_ecg_500hz_1m": "configs/acl_ecg_500hz_1m.py",
    "acl_ecg_500hz_10m": "configs/acl_ecg_500hz_10m.py",
    "clear_500hz_57m": "configs/clear_500hz_57m.py",
}
PRESET_FS = 500  # the presets' data are prepared with --fs 500
POD_DEVICES = 32  # the abstract mesh the export test lowers for


def load_preset(name: str, *, dtype: str | None = None, batch: int | None = None) -> Config:
    """The preset's config, optionally with another compute dtype or global batch size."""
    if name not in PRESETS:
        raise SystemExit(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = load_config(os.path.join(REPO, PRESETS[name]))
    if dtype is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype=dtype))
    if batch is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=batch))
    return cfg


def batch_spec(cfg: Config, sharding=None) -> dict[str, jax.ShapeDtypeStruct]:
    """The pipeline's global batch as shapes (acl_jax.data.pipeline.train_dataset): signal
    (B, 12, W) f32, lead_mask (B, 12) f32, rpeaks (B, K) i32, patient (B,) i32, record (B,) i32."""
    b, w, k = cfg.data.batch_size, cfg.data.window, cfg.data.max_beats
    shapes = {
        "signal": ((b, 12, w), jnp.float32),
        "lead_mask": ((b, 12), jnp.float32),
        "rpeaks": ((b, k), jnp.int32),
        "patient": ((b,), jnp.int32),
        "record": ((b,), jnp.int32),
    }
    return {
        key: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
        for key, (shape, dtype) in shapes.items()
    }


class AbstractStep(NamedTuple):
    """`fn(state, batch, step_index) -> (new state, metrics)`: the training step as a pure
    function of arrays; `state` holds the (model, optimizer) shapes, `graphdef` their structure."""

    fn: Callable
    graphdef: object
    state: object
    encoder_params: int
    params: int


def _param_count(module) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def abstract_step(cfg: Config, mesh, fs: int = PRESET_FS) -> AbstractStep:
    """The step `make_train_step(mesh, cfg.seed)` builds, over abstract model and optimizer
    state (nnx.eval_shape: nothing allocated). `mesh` may be a jax.sharding.AbstractMesh; trace
    the result under `jax.set_mesh(mesh)` or `jax.sharding.use_abstract_mesh(mesh)` (the step
    reshards its keys onto "data")."""

    def init():
        model = build_pretrainer(cfg, fs=fs, bn_axis=DATA_AXIS, rngs=nnx.Rngs(cfg.seed))
        tx, _ = make_optimizer(cfg.optim, cfg.data.batch_size, cfg.train.steps)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    model, optimizer = nnx.eval_shape(init)
    graphdef, state = nnx.split((model, optimizer))
    step = make_train_step(mesh, cfg.seed)

    def fn(state, batch, step_index):
        model, optimizer = nnx.merge(graphdef, state)
        metrics = step(model, optimizer, batch, step_index)
        return nnx.state((model, optimizer)), metrics

    return AbstractStep(fn, graphdef, state, _param_count(model.encoder), _param_count(model))


def step_args(cfg: Config, step: AbstractStep, mesh) -> tuple:
    """(state, batch, step index) as ShapeDtypeStructs: state replicated, batch split over
    "data", as acl_jax.train.step places them."""
    replicated = jax.NamedSharding(mesh, P())
    state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), step.state
    )
    batch = batch_spec(cfg, jax.NamedSharding(mesh, P(DATA_AXIS)))
    return state, batch, jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated)


def export_for_pod(cfg: Config, platforms=("tpu", "cuda"), devices: int = POD_DEVICES):
    """`jax.export` of the full training step for `platforms` over an abstract `devices`-chip
    "data" mesh (no device needed): returns the jax.export.Exported."""
    # Explicit axis, as jax.make_mesh (acl_jax.train.step.make_mesh) gives the real mesh.
    mesh = jax.sharding.AbstractMesh(
        (devices,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Explicit,)
    )
    step = abstract_step(cfg, mesh)
    args = step_args(cfg, step, mesh)
    with jax.sharding.use_abstract_mesh(mesh):  # traced under the mesh: keys reshard on "data"
        return jax.export.export(jax.jit(step.fn), platforms=list(platforms))(*args)


def cost(cfg: Config) -> dict:
    """Parameters and XLA cost analysis of one step at cfg's global batch on one CPU device."""
    mesh = jax.make_mesh((1,), (DATA_AXIS,), devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        step = abstract_step(cfg, mesh)
        t0 = time.perf_counter()
        compiled = jax.jit(step.fn).lower(*step_args(cfg, step, mesh)).compile()
        compile_s = time.perf_counter() - t0
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
    flops = float(analysis.get("flops", float("nan")))
    return {
        "encoder_params": step.encoder_params,
        "params": step.params,
        "batch": cfg.data.batch_size,
        "window": cfg.data.window,
        "dtype": cfg.model.dtype,
        "flops_per_step": flops,
        "flops_per_sample": flops / cfg.data.batch_size,
        "bytes_accessed_per_step": float(analysis.get("bytes accessed", float("nan"))),
        "cpu_compile_s": round(compile_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--batch", type=int, default=None, help="global batch (default: preset's)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "presets.json"))
    args = ap.parse_args()
    rows = []
    for name in args.presets.split(","):
        dtypes = ("float32",) if load_preset(name).objective == "clear" else ("float32", "bfloat16")
        for dtype in dtypes:
            cfg = load_preset(name, dtype=dtype, batch=args.batch)
            row = {"preset": name, **cost(cfg)}
            rows.append(row)
            print(
                f"{name:<20}{dtype:>9}  encoder {row['encoder_params']:>11,}  all "
                f"{row['params']:>11,}  batch {row['batch']:>5}  "
                f"{row['flops_per_step'] / 1e12:8.2f} TFLOP/step  "
                f"{row['bytes_accessed_per_step'] / 1e9:8.1f} GB/step  "
                f"(compile {row['cpu_compile_s']} s)",
                flush=True,
            )
    result = {
        "what": "XLA cost analysis of the full training step, 1 CPU device, global batch",
        "jax": jax.__version__,
        "devices_for_cost": 1,
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
