"""Python cost of dispatching one compiled training call: nnx.jit as is vs nnx.cached_partial.

  PYTHONPATH=. .venv/bin/python bench/dispatch.py --data PREPARED_DIR [--configs tiny,real] \\
      [--steps-per-call 4] [--reps 9]

`nnx.jit` walks the model and optimizer graphs in Python on every call (flatten the inputs,
then write the outputs back); `nnx.cached_partial(fn, model, optimizer)` walks them once and
reuses the result, which train.loop does since issue 14. Per config: two identical states (the
model built from the same seed), one driven by each way with the same K-step call on the same
batches, interleaved; reported are the medians of the time until the call returns (dispatch:
Python and argument handling, the device still running) and of the whole call, and a check
that the two states stay bit-identical. Writes bench/results/dispatch.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import train_step  # noqa: E402
from flax import nnx  # noqa: E402

from acl_jax.train.step import make_train_steps  # noqa: E402


def state(j) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves((nnx.state(j.model), nnx.state(j.opt)))]


def measure(name: str, data: str, k: int, reps: int) -> dict:
    cfg, absent = train_step.configs([name], data)[name]
    # A long schedule, so that every measured call still moves the parameters.
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=100_000))
    plain, cached = (train_step.Jax(cfg, 100, absent, per_call=k) for _ in range(2))
    with jax.set_mesh(plain.mesh):
        raw = make_train_steps(plain.mesh, cfg.seed)
        ways = {
            "nnx.jit": lambda g, s: raw(plain.model, plain.opt, g.batches, np.int32(s)),
            # train_step.Jax.steps is the loop's nnx.cached_partial over its model and optimizer.
            "cached_partial": lambda g, s: cached.steps(g.batches, np.int32(s)),
        }
        group = plain.feed.prepare(0, k)
        times = {w: {"dispatch": [], "call": []} for w in ways}
        for r in range(reps + 1):  # the first round compiles
            for w, call in ways.items():
                t0 = time.perf_counter()
                m = call(group, 1 + r * k)
                t1 = time.perf_counter()
                jax.block_until_ready(m)
                if r:
                    times[w]["dispatch"].append(t1 - t0)
                    times[w]["call"].append(time.perf_counter() - t0)
        same = all((a == b).all() for a, b in zip(state(plain), state(cached)))
    out = {"steps_per_call": k, "batch": cfg.data.batch_size, "states_bit_identical": same}
    for w, t in times.items():
        out[w] = {f"{m}_ms": statistics.median(v) * 1e3 for m, v in t.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--configs", default="tiny,real")
    ap.add_argument("--steps-per-call", type=int, default=4)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--out", default=str(REPO / "bench/results/dispatch.json"))
    a = ap.parse_args()
    results = {}
    for name in a.configs.split(","):
        results[name] = r = measure(name, a.data, a.steps_per_call, a.reps)
        j, c = r["nnx.jit"], r["cached_partial"]
        print(
            f"{name}: dispatch {j['dispatch_ms']:.1f} -> {c['dispatch_ms']:.1f} ms per "
            f"{a.steps_per_call}-step call (whole call {j['call_ms']:.0f} / "
            f"{c['call_ms']:.0f} ms); states bit-identical: {r['states_bit_identical']}",
            flush=True,
        )
    meta = {"load_avg": list(os.getloadavg()), "jax": jax.__version__, "reps": a.reps}
    Path(a.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
