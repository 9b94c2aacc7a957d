"""Classification tasks on prepared data: linear probe, fine-tuning and CLEAR-HUG's head.

Honesty: an `Evaluation` reads the train and val splits for fitting and model selection
(`select`), and the test split only in `evaluate_test`, which refuses to run before selection is
finished or a second time. Label-fraction subsets are drawn from train only, stratified and
seeded (`tasks.stratified_fraction`).

Protocols: `linear` (logistic regression on frozen global features), `finetune` (encoder +
linear head, trained with pretraining's sharded step, early-stopped on val), `hug` (CLEAR-HUG's
hierarchical beat -> lead -> group head on the encoder's heartbeat tokens, trained and selected
like `finetune`; the encoder is fine-tuned too unless `hug_freeze_encoder`). Every protocol
calls the encoder through `features.encode`, so encoders that need R-peaks work in all of them.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from acl_jax.config import Config, to_dict
from acl_jax.data import pipeline
from acl_jax.eval import features, probe, tasks
from acl_jax.eval.args import EvalArgs, EvalError, args_dict, check_common, load_encoder
from acl_jax.eval.finetune import (
    FinetuneOptions,
    build_classifier,
    build_hug,
    finetune,
    probabilities_fn,
    start_head_from_probe,
)
from acl_jax.eval.metrics import bootstrap_ci, macro_metrics
from acl_jax.eval.save import probe_head
from acl_jax.train.step import make_mesh, place_model


def _check_args(a: EvalArgs, manifest: dict) -> None:
    check_common(a)
    if not 0.0 < a.label_fraction <= 1.0:
        raise EvalError(f"--label-fraction={a.label_fraction} must be in (0, 1]")
    train, val, test = a.splits
    # test == val is allowed (e.g. a model to ship: fit on folds 1-7, select on 8 and report 8);
    # the result and its report then say that the figures are selection-split figures.
    if train in (val, test):
        raise EvalError(
            f"--splits={','.join(a.splits)}: the train split {train!r} cannot also be val or test"
        )
    missing = [s for s in a.splits if s not in manifest["splits"]]
    if missing:
        raise EvalError(
            f"split(s) {missing} are not in {a.data}/manifest.json (available: "
            f"{sorted(manifest['splits'])}): pass --splits=TRAIN,VAL,TEST with "
            "existing names or prepare the data with those splits"
        )


def check_hug(encoder, cfg: Config) -> None:
    """--protocol hug pools heartbeat tokens: only encoders that make them qualify."""
    if not encoder.beat_tokens:
        raise EvalError(
            f"--protocol hug needs an encoder with heartbeat (beat) tokens, but this checkpoint's "
            f"objective {cfg.objective!r} gives encoder {type(encoder).__name__}: use a `clear` "
            "checkpoint (--config.objective=clear, e.g. configs/clear_ptbxl.py), or "
            "--protocol linear/finetune for this one"
        )


def check_compatible(cfg: Config, fs: int, manifest: dict, a: EvalArgs) -> None:
    """The checkpoint's config must describe inputs like the data's: rate and window length."""
    if int(manifest["fs"]) != fs:
        raise EvalError(
            f"the checkpoint was trained on {fs} Hz data but {a.data} is prepared at "
            f"{manifest['fs']} Hz: prepare the data with --fs {fs} or evaluate a "
            "checkpoint trained at that rate"
        )
    lengths = [m["length"] for m in pipeline.split_metadata(a.data, a.splits[0])]
    window = features.eval_window(cfg)
    if window > statistics.median(lengths):
        raise EvalError(
            f"the checkpoint's eval window ({window} samples) is longer than "
            f"most records of {a.data}/{a.splits[0]} (median "
            f"{statistics.median(lengths)} samples): use data with longer records"
        )


def _metrics(y: np.ndarray, s: np.ndarray, classes: list[str], a: EvalArgs) -> dict:
    return {**macro_metrics(y, s, classes), **bootstrap_ci(y, s, num=a.bootstrap, seed=a.seed)}


class Evaluation:
    """One protocol run; the test split stays unread until `evaluate_test` (see module doc)."""

    def __init__(self, a: EvalArgs):
        self.a = a
        self.manifest = pipeline.read_manifest(a.data)
        _check_args(a, self.manifest)
        # Task first: a typo should fail before a checkpoint is restored.
        self.base, self.single = tasks.parse_task(a.task, self.manifest)
        self.encoder, self.cfg, self.fs, self.step = load_encoder(a, int(self.manifest["fs"]))
        if a.protocol == "hug":
            check_hug(self.encoder, self.cfg)
        check_compatible(self.cfg, self.fs, self.manifest, a)
        self.classes = tasks.vocabulary(self.manifest, a.data, a.task, a.splits[0])
        self.mesh = make_mesh()
        self.timings: dict[str, float] = {}
        self.selection: dict | None = None
        self._test_done = False
        self._feature_cache: dict[str, np.ndarray] = {}

    def _labels(self, split: str) -> tasks.SplitLabels:
        return tasks.split_labels(self.a.data, split, self.a.task, self.manifest, self.classes)

    def _scores(self, split: str, index: np.ndarray) -> np.ndarray:
        """(N, C) class scores of the selected model for the records `index` of `split`."""
        if self.a.protocol == "linear":
            return self.probe.scores(self._features(split)[index])
        return features.record_outputs(
            features.inference_view(self.classifier),
            probabilities_fn(self.classifier),
            self.a.data,
            split,
            self.cfg,
            self.mesh,
            batch_size=self.a.batch_size,
        )[index]

    def _features(self, split: str) -> np.ndarray:
        if split in self._feature_cache:
            return self._feature_cache[split]
        t0 = time.perf_counter()
        out = features.record_outputs(
            self.view,
            features.encoder_features,
            self.a.data,
            split,
            self.cfg,
            self.mesh,
            batch_size=self.a.batch_size,
        )
        self.timings[f"features_{split}_s"] = time.perf_counter() - t0
        self._feature_cache[split] = out
        return out

    def select(self) -> dict:
        """Fits on (a label fraction of) train, selects on val; never touches test."""
        a, (train_split, val_split, _) = self.a, self.a.splits
        t0 = time.perf_counter()
        train = self._labels(train_split)
        train = tasks.subset(train, tasks.stratified_fraction(train.y, a.label_fraction, a.seed))
        self.val = self._labels(val_split)
        tasks.require_all_classes(train, self.classes, train_split, a.task)
        # Classes absent from val are excluded from the val macro average (and listed in the
        # result's excluded_classes) rather than fatal: a probe can still be fitted for them.
        self.train = train
        if a.protocol == "linear":
            self.probe, self.selection = self._fit_probe(train, train_split, val_split)
        else:
            head_init = None  # LP-FT: the probe the head starts from (--finetune-head-init)
            if a.protocol == "hug":
                self.classifier = build_hug(
                    self.encoder,
                    self.cfg,
                    len(self.classes),
                    self.single,
                    a.seed,
                    pool=a.hug_pool,
                    freeze_encoder=a.hug_freeze_encoder,
                )
            else:
                self.classifier = build_classifier(
                    self.encoder, len(self.classes), self.single, a.seed
                )
                if a.finetune_head_init == "linear":
                    head_init = self._probe_start(train, train_split, val_split)
            frozen = self.classifier.freeze_encoder
            opts = FinetuneOptions(
                steps=a.finetune_steps,
                lr=a.head_lr if frozen else a.finetune_lr,
                eval_every=a.finetune_eval_every,
                patience=a.finetune_patience,
                batch_size=a.batch_size,
                seed=a.seed,
                encoder_lr_scale=a.finetune_encoder_lr_scale,
            )
            self.selection = finetune(
                self.classifier,
                self.cfg,
                a.data,
                train_split,
                train.index,
                train.y,
                val_split,
                self.val.index,
                self.val.y,
                self.classes,
                opts,
                self.mesh,
            )
            if head_init is not None:
                self.selection["head_init"] = head_init
        self.val_scores = self._scores(val_split, self.val.index)  # (N_val, C); --save
        self.val_metrics = _metrics(self.val.y, self.val_scores, self.classes, a)
        self.timings["select_s"] = time.perf_counter() - t0
        return self.selection

    def _fit_probe(self, train: tasks.SplitLabels, train_split: str, val_split: str):
        """The linear probe on the frozen encoder's features, fitted on train, C chosen on val;
        -> (probe, selection)."""
        place_model(self.encoder, self.mesh)
        self.view = features.inference_view(self.encoder)
        x_train = self._features(train_split)[train.index]
        x_val = self._features(val_split)[self.val.index]
        return probe.select_and_fit(x_train, train.y, x_val, self.val.y, self.classes, self.single)

    def _probe_start(self, train: tasks.SplitLabels, train_split: str, val_split: str) -> dict:
        """LP-FT: starts the fine-tuning head from the linear probe (`_fit_probe`); -> a record
        of that probe's selection."""
        fitted, selection = self._fit_probe(train, train_split, val_split)
        thresholds = [0.5] * len(self.classes)  # unused: only the weights start the head
        start_head_from_probe(self.classifier, probe_head(fitted, self.classes, thresholds, {}))
        return {"from": "linear probe", **selection}

    def evaluate_test(self) -> dict:
        """Reads the test split (labels and signals) for the first and only time; the result."""
        if self.selection is None:
            raise RuntimeError(
                "evaluate_test() before select(): model selection must be done "
                "before the test split is read"
            )
        if self._test_done:
            raise RuntimeError("evaluate_test() called twice: the test split is read once")
        self._test_done = True
        a, test_split = self.a, self.a.splits[2]
        t0 = time.perf_counter()
        test = self._labels(test_split)
        if test.y.shape[0] == 0:
            raise EvalError(
                f"no record of the {test_split!r} split has a label of task "
                f"{a.task!r}: choose another task or test split"
            )
        scores = self._scores(test_split, test.index)
        self.timings["test_s"] = time.perf_counter() - t0
        return self._result(test, scores)

    def _result(self, test: tasks.SplitLabels, scores: np.ndarray) -> dict:
        a = self.a
        manifest_classes = self.manifest["tasks"][self.base]["classes"]
        return {
            "task": a.task,
            "protocol": a.protocol,
            "init": a.init,
            "label_fraction": a.label_fraction,
            "seed": a.seed,
            "step": self.step,
            "classes": self.classes,
            "classes_not_in_train": [c for c in manifest_classes if c not in self.classes],
            "splits": dict(zip(("train", "val", "test"), a.splits)),
            "test_is_val": a.splits[1] == a.splits[2],
            "counts": {"train": self.train.counts, "val": self.val.counts, "test": test.counts},
            "selection": self.selection,
            "val": self.val_metrics,
            "test": _metrics(test.y, scores, self.classes, a),
            "test_records": {
                "ids": test.ids,
                "labels": test.y.astype(int).tolist(),
                "scores": scores.astype(float).tolist(),
            },
            "timings": self.timings,
            "workdir": a.workdir,
            "data_dir": a.data,
            "fs": self.fs,
            "devices": jax.device_count(),
            "config": to_dict(self.cfg),
            "args": args_dict(a),
        }
