"""Tables and plot of bench/compare_methods.py: per row the mean over seeds, the seeds' spread,
a seed-and-record bootstrap interval and the paired difference to the reference row.

  python bench/compare_report.py OUT [--reference ROW] [--out OTHER]   # re-render from OUT.json

Rows carry their per-seed runs ("runs": seed, train/eval timings, val/test macro AUROC/AUPRC and
the paths of its kept per-record test scores, "scores", and of its eval JSON); this module adds
the aggregates and writes OUT.{json,md,png}. The bootstrap (bench/seed_bootstrap.py) reads the
per-record test scores ("scores": bench/run_scores.py's .npz, else the eval JSON's
"test_records"), aligned to the reference's first run by record id (acl_jax.compare.aligned,
which refuses results of another task, other records or other labels). Bootstraps are cached in
the row under the seeds they used and recomputed only when those change. A row with a run whose
scores are gone (both files lost) gets intervals over its seeds alone, marked in the table
(seed_bootstrap.seeds_only_*), never a bootstrap over the runs that remain.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
from pathlib import Path

import numpy as np
import run_scores

SEEDS_ONLY_NOTE = (
    "\u2020 interval and p over seeds only (Student t / Welch): the per-record test scores of "
    "some of the row's (or the reference's) seeds are gone, so the test-record part of the "
    "uncertainty is not in it."
)


def _ok(row: dict) -> list[dict]:
    return sorted((r for r in row["runs"] if "error" not in r), key=lambda r: r["seed"])


def _scores(runs: list[dict], base: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels (N, C), per-seed test scores (N, C)) aligned to the result `base`."""
    from acl_jax.compare import aligned  # imports JAX: only when there is something to compare

    out, y = [], None
    for r in runs:
        y, _, s = aligned(base, run_scores.load(run_scores.kept(r)))
        out.append(s)
    return y, out


def describe(row: dict) -> None:
    """Adds the pretrainer's parameter count and window (samples) from the header line of its
    first training log that still exists ("NAME: 0.16M parameters, ..., window 250 at 100 Hz,
    ..."), which a resumed run prints after its "resumed from ..." line."""
    logs = [r["train_log"] for r in row["runs"] if r.get("train_log")]
    logs = [p for p in logs if Path(p).exists()]  # logs of a lost machine are gone
    if "params" in row or not logs:
        return
    with open(logs[0]) as f:  # the header is among the first lines of a long log
        head = next((x for x in itertools.islice(f, 5) if " parameters, " in x), "")
    if m := re.search(r"([\d.]+M) parameters", head):
        row["params"] = m.group(1)
    if m := re.search(r"window (\d+) at", head):
        row["window"] = int(m.group(1))


def aggregate(row: dict, ref: dict | None, reference: str, num: int) -> None:
    """Means over the row's finished seeds, their spread, and the cached bootstraps."""
    import seed_bootstrap as sb

    runs = _ok(row)
    row["seeds_done"] = [r["seed"] for r in runs]
    for k in ("test_macro_auroc", "test_macro_auprc", "val_macro_auroc"):
        row.pop(k, None)
    if not runs:
        return
    auroc = [r["test_macro_auroc"] for r in runs]
    row["test_macro_auroc"] = statistics.fmean(auroc)
    row["test_macro_auroc_range"] = [min(auroc), max(auroc)]
    row["test_macro_auroc_sd"] = statistics.stdev(auroc) if len(auroc) > 1 else None
    row["test_macro_auprc"] = statistics.fmean(r["test_macro_auprc"] for r in runs)
    row["val_macro_auroc"] = statistics.fmean(r["val_macro_auroc"] for r in runs)
    for k in ("samples_per_s", "train_s"):
        if vals := [r[k] for r in runs if r.get(k) is not None]:
            row[k] = round(statistics.fmean(vals), 1)
    if peaks := [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")]:
        row["peak_rss_mb"] = max(peaks)
    ref_runs = _ok(ref) if ref else []
    kept, ref_kept = all(map(run_scores.kept, runs)), all(map(run_scores.kept, ref_runs))
    loaded: dict[str, tuple] = {}  # scores are read only for a bootstrap that is recomputed

    def scores(which: str) -> tuple[np.ndarray, list[np.ndarray]]:
        if not loaded:
            first = next(p for p in map(run_scores.kept, [*ref_runs, *runs]) if p)
            loaded["base"] = run_scores.load(first)
        if which not in loaded:
            loaded[which] = _scores(runs if which == "row" else ref_runs, loaded["base"])
        return loaded[which]

    key = [row["seeds_done"], [r["seed"] for r in ref_runs], num]
    # The row's own interval depends on its seeds and the resample count only (the key also
    # names the reference's seeds, which matter to the paired column alone).
    cached = row.get("interval", {}).get("key")
    if not cached or (cached[0], cached[-1]) != (key[0], key[-1]):
        if kept:
            row["interval"] = {**sb.seed_interval(*scores("row"), num=num), "key": key}
        else:
            row["interval"] = {**sb.seeds_only_interval(auroc), "key": key}
    row["test_macro_auroc_ci"] = row["interval"]["ci"]
    name = f"vs_{reference}"
    if row["method"] == reference or not ref_runs:
        row.pop(name, None)
    elif row.get(name, {}).get("key") != key:
        if kept and ref_kept:
            (y, mine), (_, theirs) = scores("row"), scores("ref")
            diff = sb.seed_paired_difference(y, mine, theirs, num=num)
        else:
            diff = sb.seeds_only_difference(auroc, [r["test_macro_auroc"] for r in ref_runs])
        row[name] = {**diff, "key": key}


def write_tables(a, rows: list[dict]) -> None:
    """(Re)writes OUT.json, OUT.md and OUT.png after every run, so a cut-short run keeps them."""
    ref = next((r for r in rows if r["method"] == a.reference), None)
    for r in rows:
        describe(r)
        aggregate(r, ref, a.reference, a.bootstrap)
    meta = {"task": a.task, "data": a.data, "steps": a.steps, "seeds": a.seeds}
    Path(a.out + ".json").write_text(
        json.dumps(
            {**meta, "reference": a.reference, "rows": rows, "load_average": os.getloadavg()},
            indent=2,
        )
    )
    lines = table(rows, a.reference)
    lines[:0] = [
        f"Linear probe, {a.task}, {a.steps} pretraining steps per method, seeds 0..{a.seeds - 1}"
        f" planned, the `seeds` column counts those done (data {a.data}). Test macro AUROC:"
        " mean over seeds, 95% interval from a bootstrap over seeds and test records, the"
        f" seeds' min-max (sd); the paired difference to {a.reference} likewise"
        " (bench/seed_bootstrap.py).",
        "",
    ]
    if any("\u2020" in x for x in lines[2:]):
        lines += ["", SEEDS_ONLY_NOTE]
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    done = sorted({len(r["runs"]) for r in rows if r["runs"]}) or [0]
    have = f"{done[0]}" if done[0] == done[-1] else f"{done[0]}-{done[-1]}"
    title = f"{a.task}, {a.steps} steps per method, {have} of {a.seeds} seed(s), linear probe"
    plot(rows, Path(a.out + ".png"), title)


def _ci(ci: list[float] | None, fmt: str) -> str:
    return f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "[n/a]"


def _mark(stat: dict) -> str:
    return "\u2020" if stat.get("kind") == "seeds" else ""


def table(rows: list[dict], reference: str) -> list[str]:
    lines = [
        "| method | seeds | test AUROC mean [95% CI] | seeds min-max (sd) | test AUPRC | "
        f"val AUROC | AUROC - {reference} [95% CI], p | window | params | samples/s | "
        "train s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        errors = [x["error"] for x in r["runs"] if "error" in x]
        if r.get("test_macro_auroc") is None:
            lines.append(f"| {r['method']} | 0 | {'; '.join(errors) or 'n/a'} |" + " |" * 9)
            continue
        sd = r.get("test_macro_auroc_sd")
        spread = "{:.3f}-{:.3f}".format(*r["test_macro_auroc_range"])
        spread += f" ({sd:.3f})" if sd is not None else ""
        d = r.get(f"vs_{reference}")
        paired = ""
        if d:
            paired = f"{d['delta']:+.3f} {_ci(d['ci'], '+.3f')}"
            paired += f", p={d['p_value']:.3f}" if d.get("p_value") is not None else ""
            paired += _mark(d)
        mean = f"{r['test_macro_auroc']:.3f} {_ci(r['test_macro_auroc_ci'], '.3f')}"
        mean += _mark(r["interval"])
        seeds = str(len(r["seeds_done"])) + (f" ({len(errors)} failed)" if errors else "")
        lines.append(
            f"| {r['method']} | {seeds} | {mean} | "
            f"{spread} | {r['test_macro_auprc']:.3f} | {r['val_macro_auroc']:.3f} | {paired} | "
            f"{r.get('window', 250)} | {r.get('params', '')} | {r.get('samples_per_s', '')} | "
            f"{r.get('train_s', '')} | {r.get('peak_rss_mb', '')} |"
        )
    return lines


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Mean test macro AUROC with its seed-and-record 95% interval per row, best on top; each
    seed's value as a small dot; the untrained encoder grey and dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(
        (r for r in rows if r.get("test_macro_auroc") is not None),
        key=lambda r: r["test_macro_auroc"],
    )
    if not done:
        return
    fig, ax = plt.subplots(figsize=(9, 0.34 * len(done) + 1.2))
    for y, r in enumerate(done):
        v, ci = r["test_macro_auroc"], r["test_macro_auroc_ci"]
        grey = r["objective"] == "random_init"
        if ci:  # dotted: an interval over seeds only (the table's dagger)
            ls = ":" if r["interval"].get("kind") == "seeds" else "-"
            bar = ax.errorbar(
                v, y, xerr=[[v - ci[0]], [ci[1] - v]], fmt="none", ecolor="0.3", capsize=2
            )
            bar[2][0].set_linestyle(ls)
        ax.scatter(v, y, c="0.6" if grey else "C0", zorder=3)
        seeds = [x["test_macro_auroc"] for x in _ok(r)]
        ax.scatter(seeds, [y] * len(seeds), s=8, c="C1", zorder=4, alpha=0.8)
        if grey:
            ax.axvline(v, color="0.6", ls="--", lw=1)
    ax.set_yticks(range(len(done)), [r["method"] for r in done], fontsize=8)
    ax.set_xlabel(
        "test macro AUROC, mean over seeds (95% CI: seeds x records; dotted: seeds only); "
        "dots: seeds",
        fontsize=8,
    )
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Re-renders a table from its JSON alone (no training, no eval): after the machine that ran
    it is gone, or against another reference row (--reference ROW --out OTHER)."""
    import argparse
    from types import SimpleNamespace

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("table", help="OUT of bench/compare_methods.py (OUT.json is read)")
    p.add_argument("--reference", default=None, help="row the paired column compares with")
    p.add_argument("--out", default=None, help="write OUT2.{json,md,png} (default: rewrite OUT)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    a = p.parse_args()
    d = json.loads(Path(a.table + ".json").read_text())
    reference = a.reference or d["reference"]
    if reference not in {r["method"] for r in d["rows"]}:
        raise SystemExit(f"--reference {reference!r} is not one of the rows of {a.table}.json")
    meta = {k: d[k] for k in ("task", "data", "steps", "seeds")}
    out = a.out or a.table
    write_tables(
        SimpleNamespace(**meta, reference=reference, bootstrap=a.bootstrap, out=out), d["rows"]
    )


if __name__ == "__main__":
    main()
