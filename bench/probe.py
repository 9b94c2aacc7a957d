"""Linear probe time and agreement: the JAX probe (acl_jax.eval.probe) vs the scikit-learn probe
it replaced (tests/sklearn_reference_probe.py), on the same features.

  PYTHONPATH=. .venv/bin/python bench/probe.py --data data/prepared/ptbxl100_dev \\
      [--tasks superdiagnostic,all] [--features /tmp/probe_features.npz] [--out bench/results/probe]

Features: the global features of `--config`'s encoder at random init (`--init random`: no
trained encoder is needed to time a probe), computed once with the eval pipeline
(features.record_outputs) for the train, val and test splits and cached in `--features`.
Per task: labels as `python -m acl_jax.eval` builds them (vocabulary = train classes), then each
probe fits on train, chooses C on val and scores test once. Printed and written to OUT.json:
seconds (the JAX probe cold, i.e. with its compiles, and warm), the speedup, the chosen C and the
test macro AUROC of each and their difference. `--sklearn-classes K` limits the scikit-learn
reference (and the JAX probe, for a like-for-like row) to the first K classes of a task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the scikit-learn reference lives beside the tests

import sklearn_reference_probe as ref  # noqa: E402

from acl_jax.data import pipeline  # noqa: E402
from acl_jax.eval import features, probe, tasks  # noqa: E402
from acl_jax.eval.args import EvalArgs, load_encoder  # noqa: E402
from acl_jax.eval.metrics import macro_metrics  # noqa: E402
from acl_jax.train.step import make_mesh, place_model  # noqa: E402

SPLITS = ("train", "val", "test")


def split_features(data: str, config: str, cache: Path) -> dict[str, np.ndarray]:
    """{split: (num_records, D)} of the random-init encoder, computed once into `cache`."""
    if cache.exists():
        return dict(np.load(cache))
    manifest = pipeline.read_manifest(data)
    a = EvalArgs(data=data, task="all", init="random", config=config)
    encoder, cfg, _, _ = load_encoder(a, int(manifest["fs"]))
    mesh = make_mesh()
    place_model(encoder, mesh)
    view = features.inference_view(encoder)
    out = {}
    for split in SPLITS:
        t0 = time.perf_counter()
        out[split] = features.record_outputs(
            view, features.encoder_features, data, split, cfg, mesh, batch_size=256
        )
        print(f"features {split} {out[split].shape}: {time.perf_counter() - t0:.0f} s")
    np.savez(cache, **out)
    return out


def task_data(data: str, task: str, feats: dict, limit: int | None):
    manifest = pipeline.read_manifest(data)
    _, single = tasks.parse_task(task, manifest)
    classes = tasks.vocabulary(manifest, data, task, "train")
    labels = {s: tasks.split_labels(data, s, task, manifest, classes) for s in SPLITS}
    tasks.require_all_classes(labels["train"], classes, "train", task)
    xy = {s: (feats[s][lab.index], lab.y) for s, lab in labels.items()}
    if limit and not single:
        xy = {s: (x, y[:, :limit]) for s, (x, y) in xy.items()}
        classes = classes[:limit]
    return xy, classes, single


def run_new(xy, classes, single) -> dict:
    t0 = time.perf_counter()
    fitted, sel = probe.select_and_fit(*xy["train"], *xy["val"], classes, single)
    scores = fitted.scores(xy["test"][0])
    return {"seconds": time.perf_counter() - t0, "selection": sel, "scores": scores}


def run_old(xy, classes, single) -> dict:
    t0 = time.perf_counter()
    scores_fn, sel = ref.select_and_fit(*xy["train"], *xy["val"], classes, single)
    scores = scores_fn(xy["test"][0])
    return {"seconds": time.perf_counter() - t0, "selection": sel, "scores": scores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--config", default=str(REPO / "configs" / "acl_ecg_ptbxl.py"))
    p.add_argument("--tasks", default="superdiagnostic,all")
    p.add_argument("--features", default="/tmp/probe_features.npz")
    p.add_argument("--sklearn-classes", type=int, default=0)
    p.add_argument("--skip-sklearn", default="", help="comma list of tasks without the reference")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "probe"))
    a = p.parse_args()
    feats = split_features(a.data, a.config, Path(a.features))
    out = Path(a.out + ".json")
    rows = json.loads(out.read_text())["rows"] if out.exists() else {}
    for task in a.tasks.split(","):
        limit = a.sklearn_classes or None
        xy, classes, single = task_data(a.data, task, feats, limit)
        key = task + (f" (first {limit} classes)" if limit else "")
        test_y = xy["test"][1]
        row = {"classes": len(classes), "train_records": len(xy["train"][1])}
        row["load_before"] = os.getloadavg()[0]
        new = run_new(xy, classes, single)
        warm = run_new(xy, classes, single)
        row["jax"] = {
            "seconds_cold": new["seconds"],
            "seconds_warm": warm["seconds"],
            "C": new["selection"]["C"],
            "fit": new["selection"]["fit"],
            "val_macro_auroc_by_C": new["selection"]["val_macro_auroc_by_C"],
            "test_macro_auroc": macro_metrics(test_y, new["scores"], classes)["macro_auroc"],
        }
        print(f"{key}: JAX {new['seconds']:.1f} s cold, {warm['seconds']:.1f} s warm", flush=True)
        if task not in a.skip_sklearn.split(","):
            old = run_old(xy, classes, single)
            auc_old = macro_metrics(test_y, old["scores"], classes)["macro_auroc"]
            row["sklearn"] = {
                "seconds": old["seconds"],
                "C": old["selection"]["C"],
                "val_macro_auroc_by_C": old["selection"]["val_macro_auroc_by_C"],
                "test_macro_auroc": auc_old,
            }
            row["speedup_cold"] = old["seconds"] / new["seconds"]
            row["test_macro_auroc_jax_minus_sklearn"] = row["jax"]["test_macro_auroc"] - auc_old
            row["max_abs_score_diff"] = float(np.abs(new["scores"] - old["scores"]).max())
            print(
                f"{key}: scikit-learn {old['seconds']:.1f} s, speedup {row['speedup_cold']:.1f}x; "
                f"C {row['jax']['C']:g} vs {row['sklearn']['C']:g}; test macro AUROC "
                f"{row['jax']['test_macro_auroc']:.4f} vs {auc_old:.4f} "
                f"(diff {row['test_macro_auroc_jax_minus_sklearn']:+.2e})",
                flush=True,
            )
        row["load_after"] = os.getloadavg()[0]
        rows[key] = row
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {"data": a.data, "config": a.config, "cpus": os.cpu_count(), "rows": rows}, indent=1
            )
            + "\n"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
