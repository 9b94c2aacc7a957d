"""The classification head of a model directory: linear on features, or CLEAR-HUG's pooling head.

Files (written by `write_classifier`, the one writer; `python -m acl_jax.eval --save` calls
it): DIR/classifier.npz (arrays only) and DIR/classifier.json {"format": 1, "kind": "linear" |
"hug", "labels": [C names], "thresholds": [C floats in [0, 1]], "activation": "sigmoid"
(multi-label) | "softmax" (single-label), "aggregate", "task", "step", "protocol", "source",
"eval": [results, each with its "command"]}; a file without "kind" is "linear".

kind "linear" (`LinearHead`): classifier.npz holds weight (D, C) float32, bias (C,), mean (D,),
std (D,). Probabilities: activation(((x - mean) / std) @ W + b), with x per `aggregate`:
  "features" (a linear probe): x is the record's features (the mean of its window features);
  "probabilities" (a fine-tuned classifier): x is each window's features, and the record's
  probabilities are the mean over its windows, as eval scores a fine-tuned model.
A fine-tuned classifier's DIR also holds encoder.npz (the fine-tuned encoder, same arrays
format as a model directory's; `python -m acl_jax.export --classifier DIR` exports it in
place of the checkpoint's encoder).

kind "hug" (`HugHeadArrays`): CLEAR-HUG's head (acl_jax.models.hug.HugHead) pools the encoder's
beat tokens, so it is not linear on the features and runs on the devices with the encoder:
classifier.npz holds the HugHead's weights by state path (beat_score/kernel (D, 1), ...,
out/kernel (R*D, C), out/bias (C,)), the JSON adds "hug": {"regions": the lead-group spec,
"pool": "attention" | "mean"}; aggregate is "probabilities" (window probabilities
averaged per record, as eval scores it) and DIR holds the trained encoder.npz too.
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
KINDS = ("linear", "hug")


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


@dataclasses.dataclass(frozen=True)
class HugHeadArrays:
    """A trained HugHead: arrays {state path: array}, its lead groups `regions` and `pool`;
    labels and thresholds (C,); `dim` (the beat-token width) is read off the arrays.
    Probabilities need the encoder: see acl_jax.inference.model (`Model.predict`), which
    builds the module and runs it on device."""

    arrays: dict[str, np.ndarray]
    regions: str
    pool: str
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    activation: str = "sigmoid"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    aggregate = "probabilities"  # a HUG head scores windows; records average them

    def __post_init__(self):
        c = len(self.labels)
        out = np.shape(self.arrays.get("out/kernel", ()))
        bad = [] if len(out) == 2 and out[1] == c else [f"out/kernel {out} has not {c} columns"]
        if np.ndim(self.arrays.get("beat_score/kernel")) != 2:
            bad.append("beat_score/kernel (D, 1) is missing")
        if len(self.thresholds) != c:
            bad.append(f"{len(self.thresholds)} thresholds for {c} labels")
        if self.activation not in ACTIVATIONS:
            bad.append(f"activation {self.activation!r} not in {ACTIVATIONS}")
        if self.pool not in ("attention", "mean"):
            bad.append(f"pool {self.pool!r} not in ('attention', 'mean')")
        if bad:
            raise ModelFormatError(f"HUG classifier head is inconsistent: {'; '.join(bad)}")

    @property
    def dim(self) -> int:
        return int(np.shape(self.arrays["beat_score/kernel"])[0])


def write_classifier(directory: str | epath.Path, head: LinearHead | HugHeadArrays) -> None:
    """Writes DIR/classifier.npz and DIR/classifier.json (module docstring)."""
    d = epath.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(head, HugHeadArrays):
        arrays = {k: np.asarray(v, np.float32) for k, v in head.arrays.items()}
        kind = {"kind": "hug", "hug": {"regions": head.regions, "pool": head.pool}}
    else:
        arrays = {
            k: np.asarray(getattr(head, k), np.float32) for k in ("weight", "bias", "mean", "std")
        }
        kind = {"kind": "linear"}
    save_arrays(d / ARRAYS, arrays)
    meta = {
        "format": FORMAT,
        **kind,
        "labels": list(head.labels),
        "thresholds": [float(t) for t in head.thresholds],
        "activation": head.activation,
        "aggregate": head.aggregate,
        **head.meta,
    }
    (d / META).write_text(json.dumps(meta, indent=2) + "\n")


def has_classifier(directory: str | epath.Path) -> bool:
    return (epath.Path(directory) / META).is_file()


def read_classifier(directory: str | epath.Path) -> LinearHead | HugHeadArrays:
    """The head of DIR; ModelFormatError naming the file when it is missing or malformed."""
    d = epath.Path(directory)
    path = d / META
    if not path.is_file():
        raise ModelFormatError(f"{path} is missing: {d} holds no classifier head")
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ModelFormatError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
        kind = meta.get("kind", "linear")
        if kind not in KINDS:
            raise ModelFormatError(f"{path}: kind {kind!r}, expected one of {KINDS}")
        arrays = load_arrays(d / ARRAYS)
        extra = {
            k: v for k, v in meta.items() if k not in ("format", "kind", "labels", "thresholds")
        }
        if kind == "hug":
            spec = extra.pop("hug")
            extra.pop("aggregate", None)
            return HugHeadArrays(
                arrays=arrays,
                regions=str(spec["regions"]),
                pool=str(spec["pool"]),
                labels=tuple(str(x) for x in meta["labels"]),
                thresholds=tuple(float(t) for t in meta["thresholds"]),
                activation=extra.pop("activation", "sigmoid"),
                meta=extra,
            )
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
