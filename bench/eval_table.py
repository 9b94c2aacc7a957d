"""The evaluation table of one pretraining run, beside its baselines, with every command.

  python bench/eval_table.py --workdir runs/acl_ecg --data data/prepared/ptbxl100 \
      [--tasks superdiagnostic,all] [--fractions 1.0,0.1] [--out bench/results/eval_table]

Rows per task and label fraction: the pretrained encoder under a linear probe, the same
architecture untrained (`--init random`) under the same probe, and supervised training from
scratch (`--init random --protocol finetune`). Each eval is a separate `python -m acl_jax.eval`
process (model selection on val, test read once); results go to OUT_<task>_<fraction>_<row>.json
and the table (test macro AUROC/AUPRC with 95% bootstrap CIs, val AUROC, and the paired
bootstrap p-value of pretrained vs random init) to OUT.md / OUT.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROWS = {
    "pretrained (linear)": ["--protocol", "linear"],
    "pretrained (finetune)": ["--protocol", "finetune", "--finetune-lr", "1e-3"],
    "random init (linear)": ["--protocol", "linear", "--init", "random"],
    # From scratch needs a training-from-scratch learning rate, not the fine-tuning default.
    "supervised from scratch": [
        "--protocol",
        "finetune",
        "--init",
        "random",
        "--finetune-lr",
        "1e-3",
    ],
}
FILE_TAG = {
    "pretrained (linear)": "pretrained",
    "pretrained (finetune)": "pretrained_ft",
    "random init (linear)": "random",
    "supervised from scratch": "supervised",
}


def fmt(res: dict, split: str, metric: str) -> str:
    v, ci = res[split][metric], res[split].get(metric + "_ci")
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--tasks", default="superdiagnostic,all")
    p.add_argument("--fractions", default="1.0,0.1")
    p.add_argument("--finetune-steps", type=int, default=2000)
    p.add_argument("--out", default="bench/results/eval_table")
    p.add_argument("--reuse", action="store_true", help="keep result files that already exist")
    p.add_argument("--only-rows", default="", help="comma list of row names to run (default all)")
    a = p.parse_args()
    a.only_rows = [r for r in a.only_rows.split(",") if r]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in a.tasks.split(","):
        for frac in a.fractions.split(","):
            results = {}
            for name, extra in ROWS.items():
                path = Path(f"{out}_{task}_{frac}_{FILE_TAG[name]}.json")
                cmd = [
                    sys.executable,
                    "-m",
                    "acl_jax.eval",
                    "--workdir",
                    a.workdir,
                    "--data",
                    a.data,
                    "--task",
                    task,
                    "--label-fraction",
                    frac,
                    "--out",
                    str(path),
                    "--finetune-steps",
                    str(a.finetune_steps),
                    *extra,
                ]
                shown = " ".join(["python", *cmd[1:]])
                if a.only_rows and name not in a.only_rows:
                    continue
                print("+", shown, flush=True)
                t0 = time.perf_counter()
                if a.reuse and path.is_file():  # finished by an earlier invocation
                    proc = subprocess.CompletedProcess(cmd, 0, "", "")
                else:
                    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
                row = {
                    "task": task,
                    "label_fraction": float(frac),
                    "row": name,
                    "command": shown,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                if proc.returncode != 0:
                    row["error"] = proc.stderr.strip().splitlines()[-1:]
                    print(proc.stderr[-2000:], file=sys.stderr)
                else:
                    results[name] = res = json.loads(path.read_text())
                    row.update(
                        result=str(path),
                        test_auroc=fmt(res, "test", "macro_auroc"),
                        test_auprc=fmt(res, "test", "macro_auprc"),
                        val_auroc=f"{res['val']['macro_auroc']:.3f}",
                    )
                rows.append(row)
            pre, rnd = (Path(f"{out}_{task}_{frac}_{k}.json") for k in ("pretrained", "random"))
            if "pretrained (linear)" in results and "random init (linear)" in results:
                pre_row = next(r for r in rows[::-1] if r["row"] == "pretrained (linear)")
                cmp = subprocess.run(
                    [sys.executable, "-m", "acl_jax.compare", str(pre), str(rnd)],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                )
                pre_row["vs_random"] = cmp.stdout.strip().splitlines()[-1:] or cmp.stderr[-300:]
            Path(f"{out}.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| task | labels | encoder | test macro AUROC [95% CI] | test macro AUPRC [95% CI] "
        "| val AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        frac = f"{100 * r['label_fraction']:g}%"
        if "error" in r:
            lines.append(f"| {r['task']} | {frac} | {r['row']} | failed: {r['error']} | | |")
        else:
            lines.append(
                f"| {r['task']} | {frac} | {r['row']} | {r['test_auroc']} | "
                f"{r['test_auprc']} | {r['val_auroc']} |"
            )
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in rows]
    lines += [""] + [
        f"pretrained vs random, {r['task']} {r['label_fraction']:g}: {r['vs_random']}"
        for r in rows
        if "vs_random" in r
    ]
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
