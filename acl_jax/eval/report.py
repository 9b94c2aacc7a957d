"""Writes an evaluation result: FILE.json (everything), FILE.md (tables), FILE_roc.png (curves).

The JSON holds the per-record test scores, labels and record ids, so that two results can be
compared with a paired bootstrap later (`python -m acl_jax.compare A.json B.json`).
Segmentation results (task ludb_segmentation, recognized by their "mean_dice") get a Dice table
instead and FILE_seg.png: one test record's lead II with reference and predicted waves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from acl_jax.eval.metrics import defined_classes, roc_points  # noqa: E402


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _with_ci(m: dict, key: str) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{_fmt(m[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def _finite(x):
    """NaN (an undefined metric) -> null, so that the file is strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def is_segmentation(result: dict) -> bool:
    return "mean_dice" in result["test"]


def _dice_row(name: str, m: dict) -> str:
    waves = " | ".join(
        f"{_fmt(m['dice'][w])} [{_fmt(m['dice_ci'][w][0])}, {_fmt(m['dice_ci'][w][1])}]"
        for w in m["dice"]
    )
    return f"| {name} | {m['num_records']} | {waves} | {_with_ci(m, 'mean_dice')} |"


def segmentation_markdown(result: dict) -> str:
    """Dice per wave and mean Dice (95% bootstrap CIs over records), val and test."""
    sel = result["selection"]
    step = "random init" if result["init"] == "random" else f"step {result['step']}"
    waves = list(result["test"]["dice"])
    lines = [
        f"### {result['task']}: {result['protocol']} ({step}, label fraction "
        f"{result['label_fraction']:g}, seed {result['seed']}, best step {sel['best_step']}, "
        f"target lead {result['target_lead']}, {result['fs']} Hz)",
        "",
        "| split | records | "
        + " | ".join(f"{w} Dice [95% CI]" for w in waves)
        + " | mean Dice [95% CI] |",
        "|---|---|" + "---|" * (len(waves) + 1),
        _dice_row("val", result["val"]),
        _dice_row("test", result["test"]),
    ]
    return "\n".join(lines) + "\n"


def segmentation_figure(result: dict, path: Path) -> None:
    """The example test record: lead II with reference (top band) and predicted (bottom band)
    P / QRS / T samples."""
    ex = result["example"]
    x = np.asarray(ex["signal"])
    t = np.arange(x.size) / result["fs"]
    colors = {1: "tab:green", 2: "tab:red", 3: "tab:blue"}
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t, x, color="k", lw=0.8)
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1e-3)
    for labels, y0, name in (
        (ex["true"], hi + 0.15 * span, "reference"),
        (ex["pred"], lo - 0.25 * span, "predicted"),
    ):
        labels = np.asarray(labels)
        for c, color in colors.items():
            ax.fill_between(t, y0, y0 + 0.1 * span, where=labels == c, color=color, step="mid")
        ax.text(t[0], y0 + 0.12 * span, name, fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, list(result["test"]["dice"]), loc="upper right", fontsize=7)
    ax.set(xlabel="s", ylabel="mV", title=f"record {ex['id']}, lead {result['target_lead']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(result: dict) -> str:
    """Summary table (val and test, 95% CIs) and per-class test AUROC as Markdown."""
    if is_segmentation(result):
        return segmentation_markdown(result)
    val, test = result["val"], result["test"]
    sel = result["selection"]
    chosen = f"C={sel['C']:g}" if "C" in sel else f"best step {sel['best_step']}"
    step = "random init" if result["init"] == "random" else f"step {result['step']}"
    lines = [
        f"### {result['task']}: {result['protocol']} ({step}, label fraction "
        f"{result['label_fraction']:g}, seed {result['seed']}, {chosen})",
        "",
        "| split | records | macro AUROC [95% CI] | macro AUPRC [95% CI] |",
        "|---|---|---|---|",
        f"| val | {val['num_records']} | {_with_ci(val, 'macro_auroc')} | "
        f"{_with_ci(val, 'macro_auprc')} |",
        f"| test | {test['num_records']} | {_with_ci(test, 'macro_auroc')} | "
        f"{_with_ci(test, 'macro_auprc')} |",
        "",
        "| class | test AUROC | test AUPRC | val AUROC |",
        "|---|---|---|---|",
    ]
    for c in result["classes"]:
        lines.append(
            f"| {c} | {_fmt(test['per_class_auroc'].get(c))} | "
            f"{_fmt(test['per_class_auprc'].get(c))} | "
            f"{_fmt(val['per_class_auroc'].get(c))} |"
        )
    if result.get("test_is_val"):
        lines += [
            "",
            f"test = val = split {result['splits']['val']!r}: the model was selected on these "
            "records, so these are selection-split figures (optimistic), not a held-out test.",
        ]
    if test["excluded_classes"]:
        lines += [
            "",
            f"Excluded from the test macro (no positive or no negative): "
            f"{', '.join(test['excluded_classes'])}",
        ]
    return "\n".join(lines) + "\n"


def roc_figure(result: dict, path: Path) -> None:
    """Test ROC curve per defined class plus the macro average (mean TPR on a common FPR grid)."""
    y = np.asarray(result["test_records"]["labels"])
    s = np.asarray(result["test_records"]["scores"])
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(6, 6))
    tprs = []
    for k in np.flatnonzero(defined_classes(y)):
        fpr, tpr = roc_points(y[:, k], s[:, k])
        c = result["classes"][k]
        ax.plot(
            fpr, tpr, lw=1, alpha=0.7, label=f"{c} ({result['test']['per_class_auroc'][c]:.3f})"
        )
        tprs.append(np.interp(grid, fpr, tpr))
    if tprs:
        ax.plot(
            grid,
            np.mean(tprs, axis=0),
            color="k",
            lw=2.5,
            label=f"macro ({result['test']['macro_auroc']:.3f})",
        )
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"{result['task']} {result['protocol']} (test, n={len(y)})",
    )
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(result: dict, out: str | Path) -> dict[str, Path]:
    """Writes OUT.json, OUT.md and OUT_roc.png (OUT_seg.png) beside each other; their paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg = is_segmentation(result)
    png = out.with_name(f"{out.stem}_{'seg' if seg else 'roc'}.png")
    paths = {"json": out, "md": out.with_suffix(".md"), "png": png}
    paths["json"].write_text(json.dumps(_finite(result), indent=1, allow_nan=False))
    paths["md"].write_text(markdown(result))
    (segmentation_figure if seg else roc_figure)(result, paths["png"])
    return paths
