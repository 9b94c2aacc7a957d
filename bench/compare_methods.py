"""Every objective under one protocol: same data, same step budget, same linear probe, K seeds.

  python bench/compare_methods.py --data /tmp/prepared/ptbxl100 --steps 300 --seeds 3 \
      [--methods acl_ecg,simclr,acl_ecg:region_objective=inter_alignment,...] \
      [--task superdiagnostic] [--reference acl_ecg] [--workroot /tmp/compare] [--out PREFIX]

For each row and seed s: `python -m acl_jax.train --config configs/<method>_ptbxl.py` with
--config.seed=s, --config.train.steps=STEPS and warmup STEPS // 10 (workdir WORKROOT/ROW/sS; an
existing finished one is reused, without a training time), then `python -m acl_jax.eval
--protocol linear --seed s` on it; `random_init` is the ACL-ECG architecture untrained (`--init
random --seed s`). Seeds run in the outer loop, so a cut-short run holds whole comparisons at
fewer seeds; (row, seed) runs already in the JSON from an interrupted run with the same data,
task and steps are reused, not redone, and its rows that --methods does not name stay in the
table as they are.

Rows: `--methods` names methods, or variants METHOD:KEY=VALUE[:KEY=VALUE...] whose KEY without a
dot is in the method's own config section (acl_ecg:region_objective=inter_alignment adds
--config.acl_ecg.region_objective=inter_alignment); `--ablations` adds rows
LABEL=METHOD:KEY=VALUE[:...] with full dotted keys under a label of your choice.

Each run's per-record test scores are kept in OUT_scores/ROW/sS.npz (bench/run_scores.py, about
40 kB), beside the tables and committed with them: a later seed bootstraps with the earlier ones
even when WORKROOT is gone. Writes OUT.{json,md,png} (bench/compare_report.py): per row the mean
over seeds of test macro AUROC with a 95% interval from a bootstrap over seeds AND test records,
the seeds' min-max and sd, and the paired difference to the reference row with its interval and
p-value (bench/seed_bootstrap.py); end-to-end samples/s and peak RSS of the training process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import run_scores
from compare_report import write_tables

REPO = Path(__file__).resolve().parent.parent
# ACL-ECG, the untrained baseline and the newer methods first: a cut-short run still holds
# the rows the table is read for.
METHODS = (
    "acl_ecg",
    "random_init",
    "core_ecg",
    "beat_ssl",
    "clear",
    "simclr",
    "moco",
    "byol",
    "simsiam",
    "barlow_twins",
    "vicreg",
    "cmsc",
    "3kg",
    "dlc",
    "lcd",
)


def config_for(method: str) -> Path:
    return REPO / "configs" / f"{method if method != 'random_init' else 'acl_ecg'}_ptbxl.py"


def run(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """Runs cmd, output to `log`; returns (returncode, seconds, this child's peak RSS in MB)."""
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # per-child rusage, unlike RUSAGE_CHILDREN
    return os.waitstatus_to_exitcode(status), time.perf_counter() - t0, usage.ru_maxrss / 1024


def steady_samples_per_s(workdir: Path) -> float:
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in rows[len(rows) // 5 :] if r.get("samples_per_s")]
    return statistics.median(rates) if rates else float("nan")


def _finished(workdir: Path, steps: int) -> bool:
    """Whether workdir holds the finished checkpoint of step `steps` (Orbax renames a checkpoint
    to its step number only once it is complete)."""
    return (workdir / "checkpoints" / str(steps)).is_dir()


def run_dir(root: Path, label: str) -> Path:
    """WORKROOT/ROW, the row label made safe as a folder name (':' of variants -> '_')."""
    return root / re.sub(r"[^A-Za-z0-9_.=+-]+", "_", label)


def parse_rows(methods: str, ablations: str) -> list[tuple[str, str, list[str]]]:
    """(row label, objective, config overrides) for every row: --methods, then --ablations."""
    rows = []
    for spec in filter(None, methods.split(",")):
        method, *keys = spec.split(":")
        if method not in METHODS:
            raise SystemExit(f"--methods entry {spec!r}: {method!r} is not one of {METHODS}")
        if not all("=" in k for k in keys):
            raise SystemExit(f"--methods entry {spec!r}: expected METHOD:KEY=VALUE[:...]")
        rows.append(
            (spec, method, [k if "." in k.split("=")[0] else f"{method}.{k}" for k in keys])
        )
    for spec in filter(None, ablations.split(",")):
        label, sep, rest = spec.partition("=")
        method, *overrides = rest.split(":")
        if (
            not sep
            or method not in METHODS
            or not overrides
            or not all("=" in o for o in overrides)
        ):
            raise SystemExit(f"--ablations entry {spec!r}: expected LABEL=METHOD:KEY=VALUE[:...]")
        rows.append((label, method, overrides))
    if any(m == "random_init" and o for _, m, o in rows):
        # Its eval builds configs/acl_ecg_ptbxl.py untrained: overrides would be silently unused.
        raise SystemExit("random_init takes no KEY=VALUE overrides (it is never trained)")
    return rows


def train_and_eval(a, label: str, method: str, overrides: list[str], seed: int) -> dict:
    """One (row, seed): pretrain (unless random_init) and linear-probe; -> its run record."""
    py, where = sys.executable, run_dir(Path(a.workroot), label)
    where.mkdir(parents=True, exist_ok=True)
    workdir, rec = where / f"s{seed}", {"seed": seed}
    if method != "random_init":
        warmup = a.steps // 10 if a.warmup is None else a.warmup
        cmd = [py, "-m", "acl_jax.train", "--config", str(config_for(method))]
        cmd += ["--workdir", str(workdir), f"--config.data.dir={a.data}"]
        cmd += [f"--config.objective={method}", f"--config.seed={seed}"]
        cmd += [f"--config.train.steps={a.steps}", f"--config.optim.warmup_steps={warmup}"]
        cmd += [f"--config.{o}" for o in overrides]
        log = where / f"s{seed}.train.log"
        if _finished(workdir, a.steps):  # trained outside this table (or before it was lost)
            print(f"reusing the finished {workdir} (no training time recorded)", flush=True)
            rec.update(train_rc=0, reused=True, train_log=str(log))
        else:
            rc, secs, peak = run(cmd, log)
            rec.update(train_rc=rc, train_s=round(secs, 1), peak_rss_mb=round(peak))
            rec["train_log"] = str(log)
            if rc != 0:
                return {**rec, "error": f"training failed: see {log}"}
        rec["samples_per_s"] = round(steady_samples_per_s(workdir), 1)
        source = ["--workdir", str(workdir)]
    else:
        source = ["--init", "random", "--config", str(config_for(method))]
    out, log = where / f"s{seed}.eval.json", where / f"s{seed}.eval.log"
    cmd = [py, "-m", "acl_jax.eval", *source, "--data", a.data, "--task", a.task]
    cmd += ["--protocol", "linear", "--seed", str(seed), "--out", str(out)]
    rc, secs, _ = run(cmd, log)
    rec.update(eval_rc=rc, eval_s=round(secs, 1))
    if rc != 0:
        return {**rec, "error": f"eval failed: see {log}"}
    res = json.loads(out.read_text())
    # The eval JSON stays in WORKROOT; its per-record test scores are also kept beside OUT
    # (committed with the tables), so a later seed can be bootstrapped with this one.
    kept = run_dir(Path(a.out + "_scores"), label) / f"s{seed}.npz"
    run_scores.save(res, kept)
    rec["eval"], rec["scores"] = str(out), run_scores.from_repo(kept)
    for split in ("val", "test"):
        for m in ("macro_auroc", "macro_auprc"):
            rec[f"{split}_{m}"] = res[split][m]
    return rec


def previous_rows(a: argparse.Namespace) -> dict[str, dict]:
    """Rows of an interrupted run with the same data, task and steps, by label, keeping only
    their finished (seed) runs; rows of the older one-seed format (no "runs") are not reused."""
    path = Path(a.out + ".json")
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if (old.get("data"), old.get("task"), old.get("steps")) != (a.data, a.task, a.steps):
        return {}
    rows = {}
    for r in old["rows"]:
        runs = [x for x in r.get("runs", []) if "error" not in x]
        if runs:
            rows[r["method"]] = {**r, "runs": runs}
    if rows:
        print(
            "reusing:",
            ", ".join(f"{k} seeds {[x['seed'] for x in r['runs']]}" for k, r in rows.items()),
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="lr warmup steps for every method (default steps // 10: the configs' 500 are "
        "sized for their full 2000-step runs)",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 per row (train and probe)")
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma list of METHOD or METHOD:KEY=VALUE[:...] (KEY in the method's section)",
    )
    p.add_argument("--task", default="superdiagnostic")
    p.add_argument(
        "--ablations",
        default="",
        help="extra rows LABEL=METHOD:KEY=VALUE[:KEY=VALUE...] separated by commas, e.g. "
        "acl_ecg_no_inter=acl_ecg:acl_ecg.w_inter=0 (config overrides on top of the method's)",
    )
    p.add_argument("--reference", default="acl_ecg", help="row the paired column compares with")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--workroot", default="/tmp/acl_compare")
    p.add_argument("--out", default="bench/results/compare_methods", help="OUT.{json,md,png}")
    a = p.parse_args()
    if a.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {a.seeds}")
    plan = parse_rows(a.methods, a.ablations)
    Path(a.workroot).mkdir(parents=True, exist_ok=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    old = previous_rows(a)
    order = [*old, *(label for label, _, _ in plan if label not in old)]  # the JSON's row order
    rows = []
    for label, method, overrides in plan:
        row = old.pop(label, {})
        if row.get("objective", method) != method or row.get("overrides", []) != overrides:
            row = {}  # the label now names a different run
        # The row's cached aggregates (its intervals, keyed by the seeds they used) stay: an
        # interval whose seeds' scores are gone could not be recomputed.
        rows.append(
            {
                **row,
                "method": label,
                "objective": method,
                "overrides": overrides,
                "runs": row.get("runs", []),
            }
        )
    # Rows of the JSON that --methods does not name are kept as they are (a run for some rows
    # adds to the table, it does not shrink it).
    table_rows = sorted(rows + list(old.values()), key=lambda r: order.index(r["method"]))
    if a.reference not in {r["method"] for r in table_rows}:
        raise SystemExit(f"--reference {a.reference!r} is not one of the rows")
    for seed in range(a.seeds):
        for (label, method, overrides), row in zip(plan, rows):
            if any(r["seed"] == seed for r in row["runs"]):
                continue
            row["runs"].append(train_and_eval(a, label, method, overrides, seed))
            write_tables(a, table_rows)
    write_tables(a, table_rows)  # also when every run was reused: refreshes the tables, the plot


if __name__ == "__main__":
    main()
