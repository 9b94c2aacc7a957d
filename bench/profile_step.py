"""Where a training step's time goes on XLA CPU: a profile grouped by our source and by kernel kind.

  PYTHONPATH=. .venv/bin/python bench/profile_step.py --data PREPARED_DIR [--config lcd] \\
      [--steps 3] [--autodiff-bn] [--out bench/results/profile_lcd.json]

The jitted training step of bench/train_step.py's `--config` (tiny, real or lcd) runs on one
fixed batch under `jax.profiler` (a Perfetto trace). Each XLA CPU kernel (thunk) in the trace
is named after its HLO instruction; the compiled module's stack frames map that instruction to
the innermost acl_jax source (file:function, e.g. augment/signal_ops.py:gaussian_noise;
"optax" for the optimizer update) that produced it, and its op_name says whether it is in the
backward pass (JAX's `transpose(...)`, or a hand-written `_bwd`). Kinds, from the instruction name:
convolution, ynn (XNNPACK-backed fusions: dots, reductions), transpose/copy fusions (layout
changes, e.g. around the weight-gradient convolutions), gather/select, and other (elementwise)
fusions. Prints both breakdowns as shares of the kernels' total time and ms per step; writes
OUT (JSON). Kernel times are summed over the intra-op threads, so shares, not sums, compare
with wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import encoder_passes  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import train_step  # noqa: E402

KINDS = (
    ("convolution", re.compile(r"conv")),
    ("ynn", re.compile(r"^ynn")),
    ("transpose/copy", re.compile(r"transpose|^copy")),
    ("gather/select", re.compile(r"gather|scatter|select")),
)


def kind_of(name: str) -> str:
    return next((k for k, pat in KINDS if pat.search(name)), "other fusion")


def _table(text: str, section: str) -> list[str]:
    m = re.search(rf"^{section}\n((?:\d+ .*\n)+)", text, re.M)
    return m.group(1).splitlines() if m else []


def sources(hlo: str) -> dict[str, tuple[str, bool]]:
    """{instruction: (innermost acl_jax "file:function" or library, in the backward pass)}.

    XLA's fusions often carry no stack frame of their own; they take the ROOT's (or the first
    located) instruction of the computation they call."""
    files = {int(k): v.strip('"') for k, v in (x.split(" ", 1) for x in _table(hlo, "FileNames"))}
    funcs = {
        int(k): v.strip('"') for k, v in (x.split(" ", 1) for x in _table(hlo, "FunctionNames"))
    }
    locs = {}
    for x in _table(hlo, "FileLocations"):
        k, v = x.split(" ", 1)
        f = int(re.search(r"file_name_id=(\d+)", v).group(1))
        fn = int(re.search(r"function_name_id=(\d+)", v).group(1))
        locs[int(k)] = (files.get(f, ""), funcs.get(fn, ""))
    frames = {}
    for x in _table(hlo, "StackFrames"):
        k, v = x.split(" ", 1)
        loc = int(re.search(r"file_location_id=(\d+)", v).group(1))
        frames[int(k)] = (loc, int(re.search(r"parent_frame_id=(\d+)", v).group(1)))

    def origin(frame: int) -> str:
        seen, lib = set(), None
        while frame in frames and frame not in seen:
            seen.add(frame)
            loc, parent = frames[frame]
            path, func = locs.get(loc, ("", ""))
            if "/acl_jax/" in path:
                return f"{path.split('/acl_jax/', 1)[1]}:{func}"
            if lib is None and "site-packages/" in path:
                lib = path.split("site-packages/", 1)[1].split("/", 1)[0]
            frame = parent
        return lib or "unknown"

    comps, insts, current = {}, {}, None
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY )?%(\S+) .*\{$", line)
        if head:
            current = comps.setdefault(head.group(1), [])
        elif line == "}":
            current = None
        elif current is not None and (m := re.match(r"^\s*(ROOT )?%(\S+) = (.*)$", line)):
            rest = m.group(3)
            sf = re.search(r"stack_frame_id=(\d+)", rest)
            op = re.search(r'op_name="([^"]*)"', rest)
            insts[m.group(2)] = (
                int(sf.group(1)) if sf else None,
                op.group(1) if op else "",
                re.findall(r"calls=%(\S+?)[,\s}]", rest + " "),
            )
            current.insert(0, m.group(2)) if m.group(1) else current.append(m.group(2))

    def resolve(name: str, depth: int = 0):
        frame, op, calls = insts.get(name, (None, "", []))
        if frame is not None or depth > 4:
            return frame, op
        for comp in calls:
            for inner in comps.get(comp, []):
                f, o = resolve(inner, depth + 1)
                if f is not None:
                    return f, o or op
        return None, op

    out = {}
    for name in insts:
        frame, op = resolve(name)
        where = origin(frame) if frame is not None else "unknown"
        out[name] = (where, "transpose(" in op or where.endswith(":_bwd"))
    return out


def kernel_times(trace_dir: str) -> dict[str, float]:
    """{thunk name: total microseconds} from the newest Perfetto trace under trace_dir."""
    path = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    data = json.load(gzip.open(path))
    events = data["traceEvents"] if isinstance(data, dict) else data
    out = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "Pjit")):
            out[name] += e.get("dur", 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared dir (e.g. PTB-XL at 100 Hz)")
    ap.add_argument("--config", default="lcd", choices=("tiny", "real", "lcd"))
    ap.add_argument("--steps", type=int, default=3, help="profiled steps")
    ap.add_argument(
        "--autodiff-bn",
        action="store_true",
        help="BatchNorm's backward by XLA autodiff (the step before the hand-written one)",
    )
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    cfg, absent = train_step.configs([a.config], a.data)[a.config]
    j = train_step.Jax(cfg, 100, absent)
    with encoder_passes.patched(autodiff_bn=a.autodiff_bn, conv=False), jax.set_mesh(j.mesh):
        hlo = j.step.lower(j.model, j.opt, j.fixed, np.int32(1)).compile().as_text()
        j.compile()  # traces and compiles (nnx.jit caches it) while the patch is active
        j.run_step(2)  # warm
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        t0 = time.perf_counter()
        j.run_step(a.steps)
        wall = (time.perf_counter() - t0) / a.steps
        jax.profiler.stop_trace()
        times = kernel_times(tmp)
    src = sources(hlo)
    by_source, by_kind = collections.Counter(), collections.Counter()
    for name, us in times.items():
        base = name.removeprefix("end: ")
        origin, backward = src.get(base, ("not in HLO", False))
        by_source[f"{origin} ({'backward' if backward else 'forward'})"] += us
        by_kind[kind_of(base)] += us
    total = sum(times.values())
    report = {
        "config": a.config,
        "autodiff_bn": a.autodiff_bn,
        "steps": a.steps,
        "wall_s_per_step": wall,
    }
    for title, table in (("by source", by_source), ("by kernel kind", by_kind)):
        rows = [
            {"what": k, "share": v / total, "ms_per_step": v / 1e3 / a.steps}
            for k, v in table.most_common()
        ]
        report[title.replace(" ", "_")] = rows
        print(
            f"\n{a.config}: kernel time {title} (sum over threads {total / 1e3 / a.steps:.0f} ms)"
        )
        for r in rows:
            if r["share"] >= 0.005:
                print(f"  {r['share']:6.1%} {r['ms_per_step']:8.1f} ms  {r['what']}")
    print(f"\nwall {wall * 1e3:.0f} ms per step ({cfg.data.batch_size / wall:.0f} samples/s)")
    tag = "_autodiff_bn" if a.autodiff_bn else ""
    out = Path(a.out or REPO / f"bench/results/profile_{a.config}{tag}.json")
    report |= {"load_avg": list(os.getloadavg()), "jax": jax.__version__}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
