"""Where pretraining pays: test macro AUROC against the fraction of labelled train records.

  python bench/label_efficiency.py --workdir RUN --data DATA [--tasks superdiagnostic,all] \
      [--fractions 0.01,0.05,0.1,1.0] [--seeds 3] [--finetune-steps 2000] \
      [--recipes plain,enc_lr_0.1,lp_ft] \
      [--out bench/results/label_efficiency] [--runs /tmp/label_efficiency_runs]

For one pretraining workdir, `python -m acl_jax.eval --label-fraction F --seed S` per task,
fraction F, label-subset seed S (0..K-1) and row: the pretrained encoder under the linear probe
and fine-tuned, the same architecture trained from scratch (`--init random --protocol finetune`)
and untrained under the linear probe (`--init random`, row random_linear). The fine-tuned row's
recipe is chosen on validation: each of --recipes (plain; the encoder at 0.1 x the head's rate;
LP-FT, the head started as the linear probe) runs as a candidate row pretrained_finetune:RECIPE
on the first label subset (seed 0); per (task, F) the candidate with the best VAL macro AUROC
there is the recipe, and seeds 1..K-1 fine-tune with it alone (the test split plays no part in
the choice; choosing once per cell rather than per seed saves 2 x (K-1) fine-tunes per cell,
a third of the bench's cost at K=3, and the seed interval then covers one fixed recipe).
Tasks run one after another (each at every seed), so a cut-short run has whole tasks.
Each eval writes RUNS/<task>_<F>_<row>_s<S>.json (--runs, default OUT_runs); runs already
listed in OUT.json (whose scores are kept in OUT_scores/, or whose result file exists) are
skipped, so an interrupted run resumes, on another machine too.
Per (task, F, row): the mean over subset seeds of test macro AUROC with a 95% interval from a
bootstrap over those seeds and the test records (bench/seed_bootstrap.py), and the paired
difference of each pretrained row to the from-scratch row. Writes OUT.{json,md,png} (AUROC vs
label fraction).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import run_scores

REPO = Path(__file__).resolve().parent.parent
# Row -> eval flags. From scratch needs a training-from-scratch learning rate (bench/eval_table).
ROWS = {
    "pretrained_linear": ["--protocol", "linear"],
    "pretrained_finetune": ["--protocol", "finetune", "--finetune-lr", "1e-3"],
    "scratch": ["--protocol", "finetune", "--init", "random", "--finetune-lr", "1e-3"],
    # The same architecture untrained under the same probe: what pretraining adds to features.
    "random_linear": ["--protocol", "linear", "--init", "random"],
}
BASELINE = "scratch"
SELECTED = "pretrained_finetune"  # its recipe is chosen on validation, per cell and seed
# Fine-tuning recipes of the pretrained encoder (flags added to SELECTED's): plain; the encoder
# at a tenth of the head's rate; LP-FT (the head starts as the linear probe).
RECIPES = {
    "plain": [],
    "enc_lr_0.1": ["--finetune-encoder-lr-scale", "0.1"],
    "lp_ft": ["--finetune-head-init", "linear"],
}


def run_eval(a, task: str, frac: str, row: str, seed: int, path: Path) -> dict:
    """One eval; row is a ROWS key or SELECTED:RECIPE (a candidate recipe)."""
    base, _, recipe = row.partition(":")
    flags = [*ROWS[base], *RECIPES.get(recipe, [])]
    cmd = [sys.executable, "-m", "acl_jax.eval", "--workdir", a.workdir, "--data", a.data]
    cmd += ["--task", task, "--label-fraction", frac, "--seed", str(seed), *flags]
    cmd += ["--finetune-steps", str(a.finetune_steps), "--out", str(path)]
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    log = path.with_suffix(".log")
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode
    secs = round(time.perf_counter() - t0, 1)
    rec = {"task": task, "fraction": float(frac), "row": row, "seed": seed, "s": secs}
    if rc != 0:
        return {**rec, "error": f"eval failed (rc {rc}): see {log}"}
    res = json.loads(path.read_text())
    # The per-record test scores are also kept beside OUT (bench/run_scores.py): a later
    # session bootstraps with this run even when RUNS is gone.
    scores = Path(f"{a.out}_scores") / path.with_suffix(".npz").name
    run_scores.save(res, scores)
    return {
        **rec,
        "eval": str(path),
        "scores": run_scores.from_repo(scores),
        "val_macro_auroc": res["val"]["macro_auroc"],
        "test_macro_auroc": res["test"]["macro_auroc"],
    }


def _best(cands: list[dict]) -> dict:
    """The candidate run (row SELECTED:RECIPE) with the best VALIDATION macro AUROC; ties go
    to the recipe listed first in RECIPES."""
    order = list(RECIPES)
    ranked = sorted(cands, key=lambda r: order.index(r["row"].split(":", 1)[1]))
    return max(ranked, key=lambda r: r["val_macro_auroc"])  # max keeps the first of ties


def chosen_recipe(runs: list[dict], task: str, frac: float) -> str | None:
    """The recipe of (task, frac): the best seed-0 candidate (_best); None until a seed-0
    candidate has finished."""
    cands = [
        r
        for r in runs
        if (r["task"], r["fraction"], r["seed"]) == (task, frac, 0)
        and r["row"].startswith(SELECTED + ":")
        and "error" not in r
    ]
    return _best(cands)["row"].split(":", 1)[1] if cands else None


def pending(runs: list[dict], tasks: list[str], fractions: list[str], seeds: int, rows: list[str]):
    """Yields the evals still to run, in order, as (task, fraction, row, seed); the caller
    appends each result to `runs`, which this reads as it goes. Tasks outer (a cut-short run
    has whole tasks), then seeds: seed 0 runs every candidate recipe, so the recipe chosen on
    it (chosen_recipe) is known before seed 1 needs it; later seeds run that candidate only."""
    done = {(r["task"], r["fraction"], r["row"], r["seed"]) for r in runs}  # from earlier calls
    for task in tasks:
        for seed in range(seeds):
            for frac in fractions:
                recipe = chosen_recipe(runs, task, float(frac)) if seed else None
                for row in rows:
                    if (task, float(frac), row, seed) in done:
                        continue
                    if seed and row.startswith(SELECTED + ":") and row != f"{SELECTED}:{recipe}":
                        continue  # not the recipe chosen on seed 0 (or none of them finished)
                    yield task, frac, row, seed


def with_selected(runs: list[dict]) -> list[dict]:
    """runs plus, per (task, fraction, seed), the SELECTED row: the candidate recipe
    (SELECTED:RECIPE) with the best VALIDATION macro AUROC (ties: the first recipe listed).
    Seed 0 holds every candidate; later seeds hold the one chosen on seed 0 (chosen_recipe)."""
    out = [r for r in runs if r["row"] != SELECTED]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if r["row"].startswith(SELECTED + ":") and "error" not in r:
            groups.setdefault((r["task"], r["fraction"], r["seed"]), []).append(r)
    for cands in groups.values():
        best = _best(cands)
        out.append({**best, "row": SELECTED, "recipe": best["row"].split(":", 1)[1]})
    return out


def _scores(ref: dict, runs: list[dict]):
    """(labels (N, C), per-seed test scores) of `runs`, aligned to the eval result `ref`."""
    from acl_jax.compare import aligned  # imports JAX: only when there is something to compare

    loaded = [aligned(ref, run_scores.load(run_scores.kept(r))) for r in runs]
    return loaded[0][0], [s for _, _, s in loaded]


def summarize(runs: list[dict], num: int, previous=(), group=None) -> list[dict]:
    """One cell per (task, fraction, row): mean, seed-and-record interval, paired vs scratch.
    With group=(task, fraction), only that group's cells are computed and every other cell is
    taken from `previous`: a new run changes the cells of its own group alone (its row, the
    fine-tune row chosen from it and, for scratch, the group's paired column); re-bootstrapping
    every cell after each eval had cost 25 CPU-minutes in 41 minutes beside the all task's
    evals (before acl_jax/eval/resampled.py made each bootstrap several times cheaper)."""
    import seed_bootstrap as sb

    ok = [r for r in with_selected(runs) if "error" not in r]
    cells = [c for c in previous if (c["task"], c["fraction"]) != group] if group else []
    for key in sorted({(r["task"], r["fraction"], r["row"]) for r in ok}):
        if group and key[:2] != group:
            continue
        mine = sorted(
            (r for r in ok if (r["task"], r["fraction"], r["row"]) == key), key=lambda r: r["seed"]
        )
        base = [r for r in ok if (r["task"], r["fraction"], r["row"]) == (*key[:2], BASELINE)]
        ref = run_scores.load(run_scores.kept((base or mine)[0]))
        y, s = _scores(ref, mine)
        cell = {"task": key[0], "fraction": key[1], "row": key[2], "seeds": len(mine)}
        if key[2] == SELECTED:
            cell["recipes_chosen_on_val"] = [r["recipe"] for r in mine]
        cell |= {"test_macro_auroc": sb.seed_interval(y, s, num=num)}
        if key[2] != BASELINE and base:
            cell["vs_scratch"] = sb.seed_paired_difference(y, s, _scores(ref, base)[1], num=num)
        cells.append(cell)
    return sorted(cells, key=lambda c: (c["task"], c["fraction"], c["row"]))


def write(a, runs: list[dict], previous=(), group=None) -> list[dict]:
    """OUT.{json,md,png} from runs (summarize's cells; previous and group as there)."""
    out = Path(a.out)
    cells = summarize(runs, a.bootstrap, previous, group)
    meta = {"workdir": a.workdir, "data": a.data, "finetune_steps": a.finetune_steps}
    Path(f"{out}.json").write_text(json.dumps({**meta, "runs": runs, "cells": cells}, indent=2))
    lines = [
        f"Label efficiency of {a.workdir} (data {a.data}): test macro AUROC, mean over "
        "label-subset seeds [95% interval over seeds and test records]; paired difference to "
        f"training from scratch, same interval, p. {SELECTED}: the recipe with the best val "
        f"AUROC among {', '.join(RECIPES)} on label subset 0, then used for every seed "
        f"(listed per seed); {SELECTED}:RECIPE rows are the candidates (seed 0 only, but "
        "every seed for the chosen one).",
        "",
        "| task | labels | row | seeds | test AUROC [95% CI] | - scratch [95% CI], p |",
        "|---|---|---|---|---|---|",
    ]
    for c in cells:
        m, d = c["test_macro_auroc"], c.get("vs_scratch")
        diff = ""
        if d:
            diff = f"{d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}], p={d['p_value']:.3f}"
        chosen = c.get("recipes_chosen_on_val")
        row = f"{c['row']} ({', '.join(chosen)})" if chosen else c["row"]
        lines.append(
            f"| {c['task']} | {c['fraction']:.0%} | {row} | {c['seeds']} | "
            f"{m['mean']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] | {diff} |"
        )
    failed = [r for r in runs if "error" in r]
    lines += [
        f"\nFailed: {r['task']} {r['fraction']} {r['row']} s{r['seed']}: {r['error']}"
        for r in failed
    ]
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    plot(cells, Path(f"{out}.png"))
    return cells


def plot(cells: list[dict], path: Path) -> None:
    """One panel per task: AUROC vs label fraction (log axis), a line and interval band per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in cells})
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for i, row in enumerate(ROWS):
            pts = sorted(
                (c for c in cells if c["task"] == task and c["row"] == row),
                key=lambda c: c["fraction"],
            )
            if not pts:
                continue
            x = [c["fraction"] for c in pts]
            m = [c["test_macro_auroc"]["mean"] for c in pts]
            lo = [c["test_macro_auroc"]["ci"][0] for c in pts]
            hi = [c["test_macro_auroc"]["ci"][1] for c in pts]
            ax.plot(x, m, "o-", color=f"C{i}", label=row.replace("_", " "))
            ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.2)
        ax.set_xscale("log")
        ticks = sorted({c["fraction"] for c in cells if c["task"] == task})
        ax.set_xticks(ticks, [f"{f:.0%}" for f in ticks])
        ax.minorticks_off()
        ax.set_xlabel("fraction of labelled train records")
        ax.set_ylabel("test macro AUROC (95% CI)")
        ax.set_title(task, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--tasks", default="superdiagnostic,all")
    p.add_argument("--fractions", default="0.01,0.05,0.1,1.0")
    p.add_argument("--seeds", type=int, default=3, help="label-subset seeds 0..K-1")
    p.add_argument("--rows", default=",".join(ROWS), help=f"subset of {','.join(ROWS)}")
    p.add_argument(
        "--recipes",
        default=",".join(RECIPES),
        help=f"fine-tuning recipes tried for {SELECTED}, chosen on val (of {','.join(RECIPES)})",
    )
    p.add_argument("--finetune-steps", type=int, default=2000)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--out", default="bench/results/label_efficiency", help="OUT.{json,md,png}")
    p.add_argument(
        "--runs",
        default=None,
        help="folder for each eval's result JSON (about 420 kB each; default OUT_runs): put it "
        "outside the repo when OUT is committed",
    )
    a = p.parse_args()
    rows = [r for r in a.rows.split(",") if r]
    if unknown := sorted(set(rows) - set(ROWS)):
        raise SystemExit(f"--rows: {unknown} not among {list(ROWS)}")
    recipes = [r for r in a.recipes.split(",") if r]
    if not recipes or (unknown := sorted(set(recipes) - set(RECIPES))):
        raise SystemExit(f"--recipes: {a.recipes!r}: choose among {list(RECIPES)}")
    # SELECTED runs as its candidate recipes; the row itself is chosen from them on val.
    rows = [
        x for r in rows for x in ([f"{SELECTED}:{c}" for c in recipes] if r == SELECTED else [r])
    ]
    out = Path(a.out)
    runs_dir = Path(a.runs or f"{out}_runs")
    runs_dir.mkdir(parents=True, exist_ok=True)
    old = json.loads(Path(f"{out}.json").read_text()) if Path(f"{out}.json").exists() else {}
    same = (old.get("workdir"), old.get("data"), old.get("finetune_steps")) == (
        a.workdir,
        a.data,
        a.finetune_steps,
    )
    runs = [r for r in old.get("runs", []) if same and "error" not in r and run_scores.kept(r)]
    cells = old.get("cells", []) if same else []
    for task, frac, row, seed in pending(
        runs, a.tasks.split(","), a.fractions.split(","), a.seeds, rows
    ):
        path = runs_dir / f"{task}_{frac}_{row.replace(':', '+')}_s{seed}.json"
        runs.append(run_eval(a, task, frac, row, seed, path))
        cells = write(a, runs, cells, group=(task, float(frac)))  # the table as it stands
    write(a, runs)  # every cell computed afresh


if __name__ == "__main__":
    main()
