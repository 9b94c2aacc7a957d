"""Writes an evaluation result: FILE.json (everything), FILE.md (tables), FILE_roc.png (curves).

The JSON holds the per-record test scores, labels and record ids, so that two results can be
compared with a paired bootstrap later (`python -m acl_jax.compare A.json B.json`).
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


def markdown(result: dict) -> str:
    """Summary table (val and test, 95% CIs) and per-class test AUROC as Markdown."""
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
    """Writes OUT.json, OUT.md and OUT_roc.png beside each other; returns their paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "md": out.with_suffix(".md"), "png": out.with_name(f"{out.stem}_roc.png")}
    paths["json"].write_text(json.dumps(_finite(result), indent=1, allow_nan=False))
    paths["md"].write_text(markdown(result))
    roc_figure(result, paths["png"])
    return paths
