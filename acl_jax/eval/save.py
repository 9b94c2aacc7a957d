"""`python -m acl_jax.eval --save DIR`: the classifier a protocol trained, in the head format.

DIR gets classifier.npz + classifier.json, written by `acl_jax.inference.classifier`'s one
writer (arrays only, no pickles), so `python -m acl_jax.export --classifier DIR` packages it.

linear: the selected probe as a `LinearHead`. The probe's standardization (train mean, scale)
becomes the head's mean/std and its coefficients the weight (D, C): one-vs-rest -> sigmoid,
multinomial -> softmax, and the two-class single-label probe (one binary regression on the
second class, as scikit-learn fits it) -> softmax over logits (0, z), which is exactly
(1 - sigmoid(z), sigmoid(z)). The head's probabilities are the probe's `scores`.

Decision thresholds, one per class, are chosen on the VALIDATION split: the threshold t among
that class's val scores maximizing F1 of (score >= t); ties go to the larger t; a class without
a positive val record gets 0.5.

finetune: the fine-tuned encoder goes to DIR/encoder.npz (the model directory's arrays
format) and its linear head (kernel (D, C), bias) to a `LinearHead` with mean 0, std 1 and
aggregate "probabilities": eval scores a fine-tuned model by averaging the head's
probabilities over a record's windows, and so does a model directory with this head.

hug: CLEAR-HUG's head pools the encoder's beat tokens, so it is stored as a `HugHeadArrays`
(its weights by state path, beat-token width, lead groups and pooling; aggregate
"probabilities"), with the HUG-trained encoder in DIR/encoder.npz as for finetune (with
--hug-freeze-encoder it equals the checkpoint's). A model directory with it runs encoder and
head on the devices per window and averages the probabilities per record, as eval does.
"""

from __future__ import annotations

import jax
import numpy as np
from etils import epath

from acl_jax.eval.args import EvalArgs, EvalError
from acl_jax.eval.probe import Probe
from acl_jax.inference import card as card_lib
from acl_jax.inference.arrays import module_arrays, save_arrays
from acl_jax.inference.classifier import ENCODER, HugHeadArrays, LinearHead, write_classifier


def check_save(a: EvalArgs, task_is_segmentation: bool) -> None:
    """Refuses --save where it cannot store what was evaluated (before anything is trained)."""
    if task_is_segmentation:
        raise EvalError("--save stores classifiers; --task ludb_segmentation has none to store")
    if a.init != "pretrained" or a.workdir is None:
        raise EvalError(
            "--save needs --init pretrained and --workdir: export packages the checkpoint's "
            "encoder, so the head must have been fitted on its features"
        )


def probe_head(probe: Probe, labels: list[str], thresholds, meta: dict) -> LinearHead:
    """The `LinearHead` whose probabilities equal `probe.scores` (module docstring)."""
    weight, bias = np.asarray(probe.coef).T, np.asarray(probe.intercept)
    activation = "softmax" if probe.single else "sigmoid"
    if probe.single and weight.shape[1] == 1:  # two classes: logits (0, z)
        weight = np.concatenate([np.zeros_like(weight), weight], axis=1)
        bias = np.concatenate([np.zeros_like(bias), bias])
    return LinearHead(
        weight=weight,
        bias=bias,
        mean=np.asarray(probe.mean),
        std=np.asarray(probe.scale),
        labels=tuple(labels),
        thresholds=tuple(float(t) for t in thresholds),
        activation=activation,
        meta=meta,
    )


def f1_thresholds(y: np.ndarray, scores: np.ndarray) -> list[float]:
    """y (N, C) {0, 1}, scores (N, C) -> per-class thresholds maximizing val F1 (docstring)."""
    out = []
    for k in range(y.shape[1]):
        pos = y[:, k] > 0
        if not pos.any():
            out.append(0.5)
            continue
        best_t, best_f1 = 0.5, -1.0
        for t in np.unique(scores[:, k])[::-1]:  # descending: ties keep the larger t
            pred = scores[:, k] >= t
            tp = int((pred & pos).sum())
            f1 = 2 * tp / (int(pred.sum()) + int(pos.sum()))
            if f1 > best_f1:
                best_t, best_f1 = float(t), f1
        out.append(best_t)
    return out


def finetuned_head(classifier, single: bool, labels: list[str], thresholds, meta) -> LinearHead:
    """The `LinearHead` of a fine-tuned `Classifier`: its nnx.Linear on window features."""
    weight = np.asarray(jax.device_get(classifier.head.kernel.get_value()))
    bias = np.asarray(jax.device_get(classifier.head.bias.get_value()))
    d = weight.shape[0]
    return LinearHead(
        weight=weight,
        bias=bias,
        mean=np.zeros(d, np.float32),
        std=np.ones(d, np.float32),
        labels=tuple(labels),
        thresholds=tuple(float(t) for t in thresholds),
        activation="softmax" if single else "sigmoid",
        aggregate="probabilities",
        meta=meta,
    )


def hug_head(classifier, single: bool, labels: list[str], thresholds, meta) -> HugHeadArrays:
    """The `HugHeadArrays` of a trained `HugClassifier` (acl_jax.models.hug)."""
    head = classifier.head
    return HugHeadArrays(
        arrays=module_arrays(head),
        regions=head.regions,
        pool=head.pool,
        labels=tuple(labels),
        thresholds=tuple(float(t) for t in thresholds),
        activation="softmax" if single else "sigmoid",
        meta=meta,
    )


def save_classifier(run, result: dict, directory: str, command: str) -> None:
    """Writes the classifier of a finished `Evaluation` (`run`) and its `result` to DIR."""
    entry = {**card_lib.eval_entry(result, directory), "command": command}
    meta = {
        "task": result["task"],
        "protocol": result["protocol"],
        "step": result["step"],
        "source": {"workdir": result["workdir"], "data_dir": result["data_dir"]},
        "eval": [entry],
    }
    thresholds = f1_thresholds(run.val.y, run.val_scores)
    d = epath.Path(directory)
    if result["protocol"] == "linear":
        head = probe_head(run.probe, run.classes, thresholds, meta)
        (d / ENCODER).unlink(missing_ok=True)  # a linear head reads the checkpoint's encoder
    else:
        to_head = hug_head if result["protocol"] == "hug" else finetuned_head
        head = to_head(run.classifier, run.single, run.classes, thresholds, meta)
        d.mkdir(parents=True, exist_ok=True)
        save_arrays(d / ENCODER, module_arrays(run.classifier.encoder))
    write_classifier(d, head)
