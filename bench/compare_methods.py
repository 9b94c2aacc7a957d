"""Every objective under one protocol: same data, same step budget, same linear probe.

  python bench/compare_methods.py --data /tmp/prepared/ptbxl100 --steps 300 \
      [--methods acl_ecg,simclr,...] [--task superdiagnostic] [--workroot /tmp/compare]

For each method: `python -m acl_jax.train --config configs/<method>_ptbxl.py` with
--config.train.steps=STEPS and warmup STEPS // 10 (a fresh workdir; an existing finished one
is reused, and so are rows already in the JSON from an interrupted run), then
`python -m acl_jax.eval --protocol linear` on it; plus the `--init random` baseline (the
ACL-ECG architecture, untrained). Writes bench/results/compare_methods.{json,md,png}: macro
AUROC/AUPRC with bootstrap 95% CIs on the test split, end-to-end samples/s (median of the
logged steady-state values), and peak RSS of the training process.
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

REPO = Path(__file__).resolve().parent.parent
REFERENCE = "acl_ecg"  # the paired-difference column is each method minus this one
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
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--task", default="superdiagnostic")
    p.add_argument(
        "--ablations",
        default="",
        help="extra rows LABEL=METHOD:KEY=VALUE[:KEY=VALUE...] separated by commas, e.g. "
        "acl_ecg_no_inter=acl_ecg:acl_ecg.w_inter=0 (config overrides on top of the method's)",
    )
    p.add_argument("--workroot", default="/tmp/acl_compare")
    p.add_argument("--out", default="bench/results/compare_methods")
    a = p.parse_args()
    root = Path(a.workroot)
    root.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    warmup = a.steps // 10 if a.warmup is None else a.warmup
    rows = previous_rows(a)
    done = {r["method"] for r in rows}
    for label, method, overrides in plan(a):
        if label in done:
            continue
        workdir = root / label
        row = {"method": label, "steps": a.steps}
        if overrides:
            row["overrides"] = overrides
        if method != "random_init":
            cfg = config_for(method)
            rc, secs, peak = run(
                [
                    py,
                    "-m",
                    "acl_jax.train",
                    "--config",
                    str(cfg),
                    "--workdir",
                    str(workdir),
                    f"--config.data.dir={a.data}",
                    f"--config.objective={method}",
                    f"--config.train.steps={a.steps}",
                    f"--config.optim.warmup_steps={warmup}",
                    *(f"--config.{o}" for o in overrides),
                ],
                root / f"{label}.train.log",
            )
            row.update(train_rc=rc, train_s=round(secs, 1), peak_rss_mb=round(peak))
            if rc != 0:
                row["error"] = f"training failed: see {root / f'{label}.train.log'}"
                rows.append(row)
                write_tables(a, rows)
                continue
            row["samples_per_s"] = round(steady_samples_per_s(workdir), 1)
            eval_args = ["--workdir", str(workdir)]
        else:
            eval_args = ["--init", "random", "--config", str(config_for(method))]
        out = root / f"{label}.eval.json"
        rc, secs, _ = run(
            [
                py,
                "-m",
                "acl_jax.eval",
                *eval_args,
                "--data",
                a.data,
                "--task",
                a.task,
                "--protocol",
                "linear",
                "--out",
                str(out),
            ],
            root / f"{label}.eval.log",
        )
        row.update(eval_rc=rc, eval_s=round(secs, 1))
        if rc != 0:
            row["error"] = f"eval failed: see {root / f'{label}.eval.log'}"
        else:
            res = json.loads(out.read_text())
            for split in ("val", "test"):
                for m in ("macro_auroc", "macro_auprc"):
                    row[f"{split}_{m}"] = res[split][m]
                    row[f"{split}_{m}_ci"] = res[split].get(f"{m}_ci")
        rows.append(row)
        write_tables(a, rows)
    write_tables(a, rows)  # also when every row was reused: refreshes the tables and the plot


def plan(a: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(row label, objective, config overrides) for every row, methods then ablations."""
    rows = [(m, m, []) for m in a.methods.split(",") if m]
    for spec in filter(None, a.ablations.split(",")):
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
    return rows


def previous_rows(a: argparse.Namespace) -> list[dict]:
    """Finished rows of an interrupted run with the same data, task and steps (kept, not redone)."""
    path = Path(a.out + ".json")
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    if (old.get("data"), old.get("task"), old.get("steps")) != (a.data, a.task, a.steps):
        return []
    rows = [r for r in old["rows"] if "error" not in r]
    print("reusing rows:", ", ".join(r["method"] for r in rows), flush=True)
    return rows


def paired_vs_reference(row: dict, root: Path) -> None:
    """Paired bootstrap of this row's test macro AUROC minus ACL-ECG's on the same test records
    (acl_jax.compare): the CI of a difference, which two overlapping CIs do not give."""
    mine, ref = root / f"{row['method']}.eval.json", root / f"{REFERENCE}.eval.json"
    if (
        row["method"] == REFERENCE
        or f"vs_{REFERENCE}" in row
        or not (mine.exists() and ref.exists())
    ):
        return
    from acl_jax.compare import compare  # imports JAX: only when there is something to compare

    out = compare(str(mine), str(ref))
    row[f"vs_{REFERENCE}"] = {k: out[k] for k in ("delta", "ci", "p_value", "num_resamples")}


def describe(row: dict, train_log: Path) -> None:
    """Adds the pretrainer's parameter count and window (samples) from its training log's
    first line ("NAME: 0.16M parameters, ..., window 250 at 100 Hz, ...")."""
    if "params" in row or not train_log.exists():
        return
    head = train_log.read_text().split("\n", 1)[0]
    if m := re.search(r"([\d.]+M) parameters", head):
        row["params"] = m.group(1)
    if m := re.search(r"window (\d+) at", head):
        row["window"] = int(m.group(1))


def write_tables(a: argparse.Namespace, rows: list[dict]) -> None:
    """(Re)writes the JSON and Markdown after every row, so a cut-short run keeps its rows."""
    for r in rows:
        describe(r, Path(a.workroot) / f"{r['method']}.train.log")
        paired_vs_reference(r, Path(a.workroot))
    Path(a.out + ".json").write_text(
        json.dumps(
            {
                "task": a.task,
                "data": a.data,
                "steps": a.steps,
                "rows": rows,
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )
    lines = [
        f"Linear probe, {a.task}, {a.steps} pretraining steps per method "
        f"(data {a.data}); test macro AUROC/AUPRC with 95% bootstrap CI.",
        "",
        "| method | test AUROC [95% CI] | test AUPRC [95% CI] | val AUROC | "
        f"AUROC - {REFERENCE} [95% CI], p | window | params | samples/s | train s | "
        "peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ci(r, key):
        v, c = r.get(key), r.get(key + "_ci")
        return f"{v:.3f} [{c[0]:.3f}, {c[1]:.3f}]" if v is not None and c else "n/a"

    for r in rows:
        val = r.get("val_macro_auroc")
        lines.append(
            f"| {r['method']} | {ci(r, 'test_macro_auroc')} | "
            f"{ci(r, 'test_macro_auprc')} | {val:.3f} | "
            if val is not None
            else f"| {r['method']} | {r.get('error', 'n/a')} | | | "
        )
        d = r.get(f"vs_{REFERENCE}")
        lines[-1] += (
            f"{d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}], p={d['p_value']:.3f} | "
            if d
            else "| "
        )
        lines[-1] += (
            f"{r.get('window', 250)} | {r.get('params', '')} | "
            f"{r.get('samples_per_s', '')} | {r.get('train_s', '')} | {r.get('peak_rss_mb', '')} |"
        )
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    plot(rows, Path(a.out + ".png"), f"{a.task}, {a.steps} steps per method, linear probe")


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Test macro AUROC with its 95% CI per method, best first; untrained encoder dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(
        (r for r in rows if r.get("test_macro_auroc_ci")), key=lambda r: r["test_macro_auroc"]
    )
    if not done:
        return
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(done) + 1.2))
    y = range(len(done))
    v = [r["test_macro_auroc"] for r in done]
    lo = [r["test_macro_auroc"] - r["test_macro_auroc_ci"][0] for r in done]
    hi = [r["test_macro_auroc_ci"][1] - r["test_macro_auroc"] for r in done]
    colors = ["0.6" if r["method"] == "random_init" else "C0" for r in done]
    ax.errorbar(v, y, xerr=[lo, hi], fmt="none", ecolor="0.3", capsize=2)
    ax.scatter(v, y, c=colors, zorder=3)
    for r in done:
        if r["method"] == "random_init":
            ax.axvline(r["test_macro_auroc"], color="0.6", ls="--", lw=1)
    ax.set_yticks(list(y), [r["method"] for r in done])
    ax.set_xlabel("test macro AUROC (95% bootstrap CI)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
