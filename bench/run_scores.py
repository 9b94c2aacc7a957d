"""A run's per-record test scores, kept small enough to commit beside the tables they feed.

An eval result (`python -m acl_jax.eval --out R.json`) is about 420 kB, mostly config and
metrics; the seed-and-record bootstrap needs only its test records. `save` keeps those in a
compressed .npz (ids, labels (N, C) uint8, scores (N, C) float32, task, classes): about 40 kB
for superdiagnostic's 2,173 x 5. Kept in the repo, they let a later session add a seed to a
row and recompute its intervals after the machine that ran the earlier seeds is gone.
float32 keeps every score's rank (AUROC reads only ranks) unless two scores differ by < 1e-7.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def save(result: dict, path: Path) -> None:
    """result: an eval result dict with "test_records" -> path (.npz), written atomically."""
    rec = result["test_records"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        ids=np.asarray(rec["ids"]),
        labels=np.asarray(rec["labels"], np.uint8),
        scores=np.asarray(rec["scores"], np.float32),
        task=np.asarray(result["task"]),
        classes=np.asarray(result["classes"]),
    )
    tmp.replace(path)


def load(path: Path) -> dict:
    """A .npz from `save` or a full eval result .json -> {task, classes, test_records}, the
    shape acl_jax.compare.aligned reads."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with np.load(path) as z:
        return {
            "task": str(z["task"]),
            "classes": z["classes"].tolist(),
            "test_records": {
                "ids": z["ids"].tolist(),
                "labels": z["labels"].astype(np.int64),
                "scores": z["scores"].astype(np.float64),
            },
        }


def from_repo(path: Path) -> str:
    """path relative to the repo root when it is inside it (a committed file), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def kept(run: dict) -> Path | None:
    """The file holding a run's per-record test scores: its .npz ("scores"), else its eval JSON
    ("eval"); None if both are gone. Relative paths are from the repo root."""
    for key in ("scores", "eval"):
        if run.get(key) and (path := REPO / run[key]).exists():
            return path
    return None
