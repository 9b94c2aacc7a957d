"""Downstream tasks: label matrices per split, class vocabularies and label-fraction subsets.

A task is a key of the manifest's "tasks" (PTB-XL: all, diagnostic, subdiagnostic,
superdiagnostic, form, rhythm; CinC: snomed_scored) or `<task>_single`, the single-label
multi-class variant: only records with exactly one label are kept (multi-label records are
removed and counted), as in the ACL-ECG lineage's superdiagnostic_single.

Class vocabulary: the classes present in the TRAIN split (manifest counts for multi-label tasks,
single-label train records for `_single`). Records with no label in the vocabulary are dropped
and counted per split; the counts go into the result JSON.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from acl_jax.data.pipeline import split_metadata

SINGLE = "_single"


class TaskError(ValueError):
    """A task that cannot be evaluated on this data; the message names the cause and the fix."""


def valid_tasks(manifest: dict) -> list[str]:
    """Every task name the data supports: the manifest's tasks and their `_single` variants."""
    base = sorted(manifest.get("tasks", {}))
    return base + [t + SINGLE for t in base]


def parse_task(task: str, manifest: dict) -> tuple[str, bool]:
    """'superdiagnostic_single' -> ('superdiagnostic', True); unknown names list valid ones."""
    single = task.endswith(SINGLE)
    base = task[: -len(SINGLE)] if single else task
    if base not in manifest.get("tasks", {}):
        raise TaskError(
            f"unknown task {task!r} for this data (manifest.json 'tasks'); valid "
            f"tasks: {valid_tasks(manifest)}"
        )
    return base, single


@dataclasses.dataclass(frozen=True)
class SplitLabels:
    """Labels of the kept records of one split.

    index: (N,) int positions of the kept records in the split (pipeline `record` values);
    ids: N record ids; y: (N, C) float32 {0, 1} (one-hot for single-label tasks);
    counts: records in the split, kept, dropped without a label, dropped as multi-label.
    """

    index: np.ndarray
    ids: list[str]
    y: np.ndarray
    counts: dict[str, int]


def _labels_of(meta: list[dict], base: str) -> list[list[str]]:
    return [sorted(set(m["labels"].get(base, []))) for m in meta]


def vocabulary(manifest: dict, data_dir: str, task: str, train_split: str) -> list[str]:
    """Sorted classes of `task` present in the train split."""
    base, single = parse_task(task, manifest)
    if not single:
        counts = manifest["tasks"][base]["counts"].get(train_split, {})
        return sorted(c for c, n in counts.items() if n > 0)
    labels = _labels_of(split_metadata(data_dir, train_split), base)
    return sorted({ls[0] for ls in labels if len(ls) == 1})


def split_labels(
    data_dir: str, split: str, task: str, manifest: dict, classes: list[str]
) -> SplitLabels:
    """Reads the split's record labels and keeps the records labelled within `classes`."""
    base, single = parse_task(task, manifest)
    meta = split_metadata(data_dir, split)
    col = {c: k for k, c in enumerate(classes)}
    index, ids, rows = [], [], []
    unlabeled = multi = 0
    for i, (m, labels) in enumerate(zip(meta, _labels_of(meta, base))):
        known = [c for c in labels if c in col]
        if not known:
            unlabeled += 1
            continue
        if single and len(labels) > 1:
            multi += 1
            continue
        row = np.zeros(len(classes), np.float32)
        row[[col[c] for c in known]] = 1.0
        index.append(i)
        ids.append(m["id"])
        rows.append(row)
    y = np.stack(rows) if rows else np.zeros((0, len(classes)), np.float32)
    counts = {
        "records": len(meta),
        "kept": len(index),
        "dropped_unlabeled": unlabeled,
        "dropped_multilabel": multi,
    }
    return SplitLabels(np.asarray(index, np.int64), ids, y, counts)


def require_all_classes(labels: SplitLabels, classes: list[str], split: str, task: str) -> None:
    """Fitting needs a positive of every vocabulary class in the (label-fraction) train split."""
    missing = [c for c, n in zip(classes, labels.y.sum(axis=0)) if n == 0]
    if missing:
        raise TaskError(
            f"task {task!r}: classes {missing} have no positive record in the {split!r} split "
            f"({labels.counts['kept']} labelled records): the {split} split must contain every "
            "class of the vocabulary. Use a coarser task (e.g. superdiagnostic), a larger "
            "--label-fraction, or prepare splits with more records"
        )


def subset(labels: SplitLabels, keep: np.ndarray) -> SplitLabels:
    """The records at positions `keep` (into labels.index), in their original order."""
    keep = np.sort(keep)
    counts = {
        **labels.counts,
        "kept": int(keep.size),
        "dropped_label_fraction": int(labels.index.size - keep.size),
    }
    return SplitLabels(labels.index[keep], [labels.ids[k] for k in keep], labels.y[keep], counts)


def stratified_fraction(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of a seeded, stratified `fraction` of the rows of y (N, C) {0, 1}.

    Rarest-label-first greedy: classes are visited from the fewest to the most positives; each
    class c gets positives up to its quota round(fraction * n_c), and at least 1 for every class
    with a positive in the full split (otherwise a class rarer than 1/fraction would vanish from
    the subset and the vocabulary would change between label fractions), drawn
    at random from the rows not chosen yet (rows chosen for rarer classes count towards it).
    The remainder up to round(fraction * N) is drawn uniformly from the rest. Rarest first,
    because rare classes have the fewest candidates: served last, they would find their rows
    already spent on the quotas of frequent classes. May exceed the total by a few rows when the
    per-class quotas demand it.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"--label-fraction must be in (0, 1], got {fraction}")
    n = y.shape[0]
    if fraction == 1.0:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    positives = y.sum(axis=0)
    chosen = np.zeros(n, bool)
    for c in np.argsort(positives, kind="stable"):
        quota = int(round(fraction * positives[c]))
        if positives[c] >= 1:
            quota = max(quota, 1)
        need = quota - int((chosen & (y[:, c] > 0)).sum())
        if need > 0:
            candidates = rng.permutation(np.flatnonzero((y[:, c] > 0) & ~chosen))
            chosen[candidates[:need]] = True
    fill = int(round(fraction * n)) - int(chosen.sum())
    if fill > 0:
        chosen[rng.permutation(np.flatnonzero(~chosen))[:fill]] = True
    return np.flatnonzero(chosen)
