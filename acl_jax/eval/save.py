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

finetune and hug are refused for now: eval scores a fine-tuned model by averaging the
head's PROBABILITIES over a record's windows, while a model directory applies its head to the
record's averaged FEATURES, so the exported classifier would not reproduce eval's scores.
"""

from __future__ import annotations

import numpy as np

from acl_jax.eval.args import EvalArgs, EvalError
from acl_jax.eval.probe import Probe
from acl_jax.inference import card as card_lib
from acl_jax.inference.classifier import LinearHead, write_classifier


def check_save(a: EvalArgs, task_is_segmentation: bool) -> None:
    """Refuses --save where it cannot store what was evaluated (before anything is trained)."""
    if task_is_segmentation:
        raise EvalError("--save stores classifiers; --task ludb_segmentation has none to store")
    if a.protocol != "linear":
        raise EvalError(
            f"--save with --protocol {a.protocol} is not supported yet (eval averages the "
            "fine-tuned head's window probabilities, a model directory averages features): "
            "use --protocol linear"
        )
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


def save_classifier(run, result: dict, directory: str, command: str) -> None:
    """Writes the head of a finished linear `Evaluation` (`run`) and its `result` to DIR."""
    entry = {**card_lib.eval_entry(result, directory), "command": command}
    meta = {
        "task": result["task"],
        "protocol": result["protocol"],
        "step": result["step"],
        "source": {"workdir": result["workdir"], "data_dir": result["data_dir"]},
        "eval": [entry],
    }
    thresholds = f1_thresholds(run.val.y, run.val_scores)
    write_classifier(directory, probe_head(run.probe, run.classes, thresholds, meta))
