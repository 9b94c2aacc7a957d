"""The classification head of a model directory: a linear layer on standardized features.

Files (written by `write_classifier`, the one writer; `python -m acl_jax.eval --save` is meant
to call it): DIR/classifier.npz with weight (D, C) float32, bias (C,), mean (D,), std (D,), and
DIR/classifier.json {"format": 1, "labels": [C names], "thresholds": [C floats in [0, 1]],
"activation": "sigmoid" (multi-label) | "softmax" (single-label), "aggregate", "task",
"step", "protocol", "source", "eval": [results, each with its "command"]}.
Probabilities: activation(((x - mean) / std) @ W + b), with x per `aggregate`:
  "features" (a linear probe): x is the record's features (the mean of its window features);
  "probabilities" (a fine-tuned classifier): x is each window's features, and the record's
  probabilities are the mean over its windows, as eval scores a fine-tuned model.
A fine-tuned classifier's DIR also holds encoder.npz (the fine-tuned encoder, same arrays
format as a model directory's; `python -m acl_jax.export --classifier DIR` exports it in
place of the checkpoint's encoder).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
from etils import epath

from acl_jax.inference.arrays import ModelFormatError, load_arrays, save_arrays

FORMAT = 1
ARRAYS = "classifier.npz"
META = "classifier.json"
ACTIVATIONS = ("sigmoid", "softmax")
AGGREGATES = ("features", "probabilities")
ENCODER = "encoder.npz"  # a fine-tuned classifier's encoder (optional)


@dataclasses.dataclass(frozen=True)
class LinearHead:
    """weight (D, C), bias (C,), mean/std (D,) float32; labels and thresholds (C,)."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    activation: str = "sigmoid"
    aggregate: str = "features"  # over a record's windows: see the module docstring
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # task, source, eval

    def __post_init__(self):
        d, c = np.shape(self.weight)
        shapes = {"bias": (c,), "mean": (d,), "std": (d,)}
        bad = [
            f"{k} {np.shape(getattr(self, k))} != {s}"
            for k, s in shapes.items()
            if np.shape(getattr(self, k)) != s
        ]
        if len(self.labels) != c or len(self.thresholds) != c:
            bad.append(f"{len(self.labels)} labels, {len(self.thresholds)} thresholds for C={c}")
        if self.activation not in ACTIVATIONS:
            bad.append(f"activation {self.activation!r} not in {ACTIVATIONS}")
        if self.aggregate not in AGGREGATES:
            bad.append(f"aggregate {self.aggregate!r} not in {AGGREGATES}")
        if not np.all(np.asarray(self.std) > 0):
            bad.append("std must be > 0")
        if bad:
            raise ModelFormatError(f"classifier head is inconsistent: {'; '.join(bad)}")

    @property
    def dim(self) -> int:
        return int(np.shape(self.weight)[0])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) features -> (N, C) float32 probabilities."""
        z = (np.asarray(x, np.float64) - self.mean) / self.std
        logits = z @ np.asarray(self.weight, np.float64) + self.bias
        if self.activation == "softmax":
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def write_classifier(directory: str | epath.Path, head: LinearHead) -> None:
    """Writes DIR/classifier.npz and DIR/classifier.json (module docstring)."""
    d = epath.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        k: np.asarray(getattr(head, k), np.float32) for k in ("weight", "bias", "mean", "std")
    }
    save_arrays(d / ARRAYS, arrays)
    meta = {
        "format": FORMAT,
        "labels": list(head.labels),
        "thresholds": [float(t) for t in head.thresholds],
        "activation": head.activation,
        "aggregate": head.aggregate,
        **head.meta,
    }
    (d / META).write_text(json.dumps(meta, indent=2) + "\n")


def has_classifier(directory: str | epath.Path) -> bool:
    return (epath.Path(directory) / META).is_file()


def read_classifier(directory: str | epath.Path) -> LinearHead:
    """The head of DIR; ModelFormatError naming the file when it is missing or malformed."""
    d = epath.Path(directory)
    path = d / META
    if not path.is_file():
        raise ModelFormatError(f"{path} is missing: {d} holds no classifier head")
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ModelFormatError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
        arrays = load_arrays(d / ARRAYS)
        extra = {k: v for k, v in meta.items() if k not in ("format", "labels", "thresholds")}
        return LinearHead(
            **{k: arrays[k] for k in ("weight", "bias", "mean", "std")},
            labels=tuple(str(x) for x in meta["labels"]),
            thresholds=tuple(float(t) for t in meta["thresholds"]),
            activation=extra.pop("activation", "sigmoid"),
            aggregate=extra.pop("aggregate", "features"),
            meta=extra,
        )
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFormatError(
            f"{d}: classifier files are malformed ({type(e).__name__}: {e})"
        ) from None
