"""Throughput of `acl_jax.prepare` on real PTB-XL: records/s with 1 and 2 workers, the projected
time for all 21,799 PTB-XL records, bytes per record on disk and the per-stage time split.

  .venv/bin/python bench/prepare.py --src /tmp/acl_data/ptbxl [--limit 2000]

Writes bench/results/prepare.json. Output folders are fresh temporary directories (removed after).
The machine is shared: the load average before and after each run is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acl_jax.prepare import PrepareArgs, run  # noqa: E402

PTBXL_RECORDS = 21_799


def bench_one(src: str, workers: int, limit: int | None, splits: str, fs: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-prepare-w{workers}-", dir="/tmp"))
    try:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        m = run(
            PrepareArgs(
                dataset="ptbxl",
                src=src,
                out=str(out),
                fs=fs,
                splits=splits,
                workers=workers,
                limit=limit,
                max_skip_fraction=1.0,
            )
        )
        wall = time.perf_counter() - t0
        n = sum(v["num_records"] for v in m["splits"].values())
        attempted = n + len(m["skipped"])
        size = sum(p.stat().st_size for p in out.rglob("*.array_record"))
        stage = m["stage_s"]
        busy = sum(stage.values())
        return {
            "workers": workers,
            "records": n,
            "skipped": len(m["skipped"]),
            "wall_s": round(wall, 2),
            "records_per_s": round(attempted / wall, 1),
            "projected_ptbxl_s": round(PTBXL_RECORDS / (attempted / wall), 1),
            "bytes_per_record": round(size / max(n, 1)),
            # Worker-side seconds summed over all workers (CPU time spent in each stage).
            "stage_s": stage,
            "stage_ms_per_record": {k: round(1e3 * v / attempted, 3) for k, v in stage.items()},
            "stage_fraction": {k: round(v / busy, 3) for k, v in stage.items()},
            "parent_overhead_s": round(wall - busy / workers, 2),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default="/tmp/acl_data/ptbxl")
    p.add_argument("--limit", type=int, default=None, help="first N records only")
    p.add_argument("--splits", default="train=1-4,val=5,test=6")
    p.add_argument("--fs", type=int, default=100)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "prepare.json"))
    a = p.parse_args()
    results = []
    for w in (int(x) for x in a.workers.split(",")):
        r = bench_one(a.src, w, a.limit, a.splits, a.fs)
        results.append(r)
        print(
            f"workers={w}: {r['records']} records in {r['wall_s']} s = {r['records_per_s']} "
            f"records/s -> PTB-XL ({PTBXL_RECORDS}) in {r['projected_ptbxl_s']} s; "
            f"{r['bytes_per_record']} B/record; ms/record {r['stage_ms_per_record']}; "
            f"load {r['loadavg_before'][0]} -> {r['loadavg_after'][0]}"
        )
    report = {
        "src": a.src,
        "limit": a.limit,
        "fs": a.fs,
        "splits": a.splits,
        "cpu_count": os.cpu_count(),
        "target_s": 180,
        "runs": results,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
