"""Issue 14, item 2: hand-written backward passes for the encoder, against XLA's autodiff.

Run: PYTHONPATH=. .venv/bin/python bench/encoder_passes.py [--reps 11]   (about 2 minutes)

The profile of the LCD-sized step put elementwise BatchNorm/ReLU work and its gradients at 41%
and the transposes around XLA's weight-gradient convolutions at 25%. Variants:

- `library`: what acl_jax runs: MaskedBatchNorm's backward written by hand as one reduction
  pass and one elementwise pass (`acl_jax.models.batchnorm`, formulas in its docstring).
- `autodiff_bn`: the same forward differentiated by XLA's autodiff (the backward before).
- `conv` (tried, not kept): the library plus Conv1d's weight gradient as one matmul over
  SAME-padded patches, dK[k, i, o] = sum_{n,t} xpad[n, t s + k, i] dy[n, t, o]
  (einsum "ntki,nto->kio"), which never moves the batch into the feature dimension as XLA's
  weight-gradient convolution does (its transposes); the input gradient stays XLA's.

Workloads: the single-lead ResNet1d of the `real` config (widths (8, 16, 32, 64), stride-2 stem,
3072 = 256 x 12 rows of 250 samples) and of the `lcd` config (widths (8, 24, 32, 72), stride-8
17-wide stem, 2048 = 256 x 8 rows of 1000 samples), a step being jit(value_and_grad) of a
scalar of the features in train mode, 20% of rows masked out of the statistics. Each variant's
loss, gradients and BatchNorm statistics are checked against the library's (relative 1e-4),
then the variants are timed round-robin, the round's first rotating; medians of wall and
process CPU seconds, and the ratio to the library. Writes bench/results/encoder_passes.json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acl_jax.models import batchnorm, resnet1d

EPS = 1e-5
WORKLOADS = {
    "real": dict(rows=256 * 12, t=250, widths=(8, 16, 32, 64), stem_stride=2, stem_kernel=0),
    "lcd": dict(rows=256 * 8, t=1000, widths=(8, 24, 32, 72), stem_stride=8, stem_kernel=17),
}
VARIANTS = {"library": (False, False), "autodiff_bn": (True, False), "conv": (False, True)}


def _conv(x, kernel, stride):
    dn = ("NWC", "WIO", "NWC")
    return jax.lax.conv_general_dilated(x, kernel, (stride,), "SAME", dimension_numbers=dn)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_patch_grad(x, kernel, stride):
    return _conv(x, kernel, stride)


def _conv_fwd(x, kernel, stride):
    return _conv(x, kernel, stride), (x, kernel)


def _conv_bwd(stride, res, dy):
    x, kernel = res
    k, t_out = kernel.shape[0], dy.shape[1]
    dx = jax.vjp(lambda xx: _conv(xx, kernel, stride), x)[1](dy)[0]
    pad = max((t_out - 1) * stride + k - x.shape[1], 0)
    xp = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    span = (t_out - 1) * stride + 1
    taps = [jax.lax.slice_in_dim(xp, j, j + span, stride=stride, axis=1) for j in range(k)]
    return dx, jnp.einsum("ntki,nto->kio", jnp.stack(taps, axis=2), dy)


conv_patch_grad.defvjp(_conv_fwd, _conv_bwd)


def conv_call(self, x):
    """Conv1d.__call__ through `conv_patch_grad`."""
    return conv_patch_grad(x.astype(self.dtype), self.kernel[...].astype(self.dtype), self.stride)


def _autodiff_batch_norm(x, w, g, b, feat, axis_name, eps, dtype):
    """The library's BatchNorm forward, differentiated by XLA's autodiff (the old backward)."""
    return batchnorm._forward(x, w, g, b, feat, axis_name, eps, dtype)[0]


@contextlib.contextmanager
def patched(autodiff_bn: bool, conv: bool):
    """Routes BatchNorm through autodiff / Conv1d through the patch matmul while tracing."""
    saved = batchnorm.batch_norm_train, resnet1d.Conv1d.__call__
    if autodiff_bn:
        batchnorm.batch_norm_train = _autodiff_batch_norm
    if conv:
        resnet1d.Conv1d.__call__ = conv_call
    try:
        yield
    finally:
        batchnorm.batch_norm_train, resnet1d.Conv1d.__call__ = saved


def compiled_step(wl: dict, autodiff_bn: bool, conv: bool, x, mask):
    """AOT-compiled fwd+bwd of one ResNet1d; returns (compiled, params, stats)."""
    model = resnet1d.ResNet1d(
        1,
        wl["widths"],
        (1,) * len(wl["widths"]),
        7,
        stem_stride=wl["stem_stride"],
        stem_kernel=wl["stem_kernel"],
        rngs=nnx.Rngs(0),
    )
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

    def loss_fn(params, stats, x, mask):
        m = nnx.merge(graphdef, params, stats, copy=True)
        f = m(x, mask)
        return jnp.mean(jnp.sin(f) * f), nnx.state(m, nnx.BatchStat)

    def step(params, stats, x, mask):
        (loss, st), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, mask)
        return loss, g, st

    with patched(autodiff_bn, conv):
        return jax.jit(step).lower(params, stats, x, mask).compile(), params, stats


def max_rel_err(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(u - v)) / (jnp.max(jnp.abs(v)) + 1e-12))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9, help="timed steps per variant")
    ap.add_argument("--out", default="bench/results/encoder_passes.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    load_before, results = os.getloadavg()[0], {}
    for name, wl in WORKLOADS.items():
        x = jnp.asarray(rng.standard_normal((wl["rows"], 1, wl["t"]), dtype=np.float32))
        mask = jnp.asarray((rng.random(wl["rows"]) > 0.2).astype(np.float32))
        runs = {}
        for v, (bn, conv) in VARIANTS.items():
            c, p, s = compiled_step(wl, bn, conv, x, mask)
            runs[v] = dict(c=c, p=p, s=s, out=jax.block_until_ready(c(p, s, x, mask)), t=[], cpu=[])
        ref = runs["library"]["out"]
        for v, r in runs.items():
            r["grad_rel_err"] = max_rel_err(r["out"][1], ref[1])
            r["stats_rel_err"] = max_rel_err(r["out"][2], ref[2])
            if max(r["grad_rel_err"], r["stats_rel_err"]) > 1e-4:
                raise SystemExit(f"{name}/{v}: differs from the library ({r['grad_rel_err']:.2e})")
        order = list(runs.values())
        for i in range(args.reps):  # rotate who goes first: the first of a round ran slower
            for r in order[i % len(order) :] + order[: i % len(order)]:
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(r["c"](r["p"], r["s"], x, mask))
                r["t"].append(time.perf_counter() - t0)
                r["cpu"].append(time.process_time() - c0)
        base_t = statistics.median(runs["library"]["t"])
        base_c = statistics.median(runs["library"]["cpu"])
        results[name] = {
            v: {
                "median_s": statistics.median(r["t"]),
                "cpu_median_s": statistics.median(r["cpu"]),
                "ratio_to_library": statistics.median(r["t"]) / base_t,
                "cpu_ratio_to_library": statistics.median(r["cpu"]) / base_c,
                "times_s": r["t"],
                "grad_rel_err": r["grad_rel_err"],
                "stats_rel_err": r["stats_rel_err"],
            }
            for v, r in runs.items()
        }
        for v, res in results[name].items():
            print(
                f"{name:5s} {v:8s} {res['median_s'] * 1e3:7.1f} ms  x{res['ratio_to_library']:.3f}"
                f"  CPU {res['cpu_median_s'] * 1e3:7.1f} ms  x{res['cpu_ratio_to_library']:.3f}"
                f"  grad rel err {res['grad_rel_err']:.1e}",
                flush=True,
            )
    meta = {
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
        "reps": args.reps,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg()[0],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "workloads": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
