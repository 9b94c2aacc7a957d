"""`--task ludb_segmentation`: per-sample P / QRS / T labelling of raw LUDB records (Beat-SSL's
downstream task), scored by Dice per wave on held-out records.

`--data` is a folder of raw LUDB records (WFDB .hea/.dat plus per-lead annotation files), not
prepared shards; records are read at the checkpoint's rate, labelled with lead II's annotation
and split record-wise (= patient-wise) with the seed (acl_jax.eval.ludb_windows). Protocols:
`linear` (frozen encoder, trained per-sample head) and `finetune` (both trained); see
acl_jax.eval.seg_model. `--label-fraction` keeps a seeded fraction of the TRAIN records.

Scores: Dice per wave pooled over the samples of the test records, their mean, and bootstrap
CIs over test records (acl_jax.eval.metrics). As for classification, the test records are read
only in `evaluate_test`, after selection on val, and only once.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from acl_jax.config import Config, to_dict
from acl_jax.eval import features
from acl_jax.eval.args import EvalArgs, EvalError, args_dict, check_common, load_encoder
from acl_jax.eval.finetune import FinetuneOptions
from acl_jax.eval.ludb_windows import (
    TARGET_LEAD,
    LudbDataError,
    SegRecord,
    list_records,
    load_record,
    make_windows,
    split_records,
)
from acl_jax.eval.metrics import WAVES, dice_bootstrap_ci, dice_metrics
from acl_jax.eval.seg_model import build_segmenter, predict, record_counts, train_segmenter
from acl_jax.leads import LEAD_INDEX
from acl_jax.models import ECGEncoder
from acl_jax.train.step import make_mesh


def check_dense(encoder, cfg: Config) -> None:
    """Segmentation needs per-time features: the encoder's features_map (ECGEncoder over a
    backbone with one, or CoRe-ECG's patch encoder)."""
    if encoder.dense:
        return
    backbone = encoder.backbone if isinstance(encoder, ECGEncoder) else None
    what = type(encoder).__name__ + (f" ({type(backbone).__name__})" if backbone else "")
    raise EvalError(
        f"--task ludb_segmentation needs per-time encoder features (features_map), but the "
        f"checkpoint's objective {cfg.objective!r} gives encoder {what} without them: use a "
        "checkpoint of an objective with a convolutional or patch encoder (e.g. acl_ecg, "
        "beat_ssl, core_ecg); CLEAR's heartbeat tokens have no time axis"
    )


def _scores(counts: np.ndarray, a: EvalArgs) -> dict:
    return {**dice_metrics(counts), **dice_bootstrap_ci(counts, num=a.bootstrap, seed=a.seed)}


class SegmentationEvaluation:
    """One run of the LUDB segmentation task; same interface as classification's Evaluation."""

    def __init__(self, a: EvalArgs):
        check_common(a)
        if a.protocol not in ("linear", "finetune"):
            raise EvalError(
                f"--protocol={a.protocol} is a classification head: --task ludb_segmentation "
                "supports --protocol linear or finetune"
            )
        if not 0.0 < a.label_fraction <= 1.0:
            raise EvalError(f"--label-fraction={a.label_fraction} must be in (0, 1]")
        self.a = a
        try:
            names = list_records(a.data)
            self.names = dict(
                zip(("train", "val", "test"), split_records(names, a.record_split, a.seed))
            )
        except LudbDataError as e:
            raise EvalError(str(e)) from e
        train = self.names["train"]
        keep = max(1, round(a.label_fraction * len(train)))
        rng = np.random.default_rng(a.seed)
        self.names["train"] = sorted(rng.permutation(train)[:keep].tolist(), key=train.index)
        self.encoder, self.cfg, self.fs, self.step = load_encoder(a, None)
        check_dense(self.encoder, self.cfg)
        self.window = features.eval_window(self.cfg)
        self.mesh = make_mesh()
        self.timings: dict[str, float] = {}
        self.selection: dict | None = None
        self._test_done = False

    def _records(self, split: str) -> list[SegRecord]:
        t0 = time.perf_counter()
        try:
            recs = [load_record(self.a.data, n, self.fs) for n in self.names[split]]
        except LudbDataError as e:
            raise EvalError(str(e)) from e
        self.timings[f"read_{split}_s"] = time.perf_counter() - t0
        return recs

    def _counts(self, recs: list[SegRecord]) -> tuple[np.ndarray, list[np.ndarray]]:
        windows = make_windows(recs, self.window)
        lengths = [len(r.labels) for r in recs]
        pred = predict(self.model, windows, lengths, self.mesh, self.a.batch_size)
        return record_counts(pred, [r.labels for r in recs]), pred

    def select(self) -> dict:
        """Trains on the train records and selects on the val records; never reads test."""
        a = self.a
        t0 = time.perf_counter()
        train, val = self._records("train"), self._records("val")
        self.num_windows = {"train": len(make_windows(train, self.window).record)}
        frozen = a.protocol == "linear"
        self.model = build_segmenter(self.encoder, hidden=a.seg_hidden, frozen=frozen, seed=a.seed)
        opts = FinetuneOptions(
            steps=a.finetune_steps,
            lr=a.head_lr if frozen else a.finetune_lr,
            eval_every=a.finetune_eval_every,
            patience=a.finetune_patience,
            batch_size=a.batch_size,
            seed=a.seed,
            encoder_lr_scale=a.finetune_encoder_lr_scale,
        )
        val_windows = make_windows(val, self.window)
        self.selection = train_segmenter(
            self.model,
            make_windows(train, self.window),
            val_windows,
            [r.labels for r in val],
            opts,
            self.mesh,
        )
        self.num_windows["val"] = len(val_windows.record)
        self.val_counts, _ = self._counts(val)
        self.timings["select_s"] = time.perf_counter() - t0
        return self.selection

    def evaluate_test(self) -> dict:
        """Reads the test records for the first and only time; the result dict."""
        if self.selection is None:
            raise RuntimeError(
                "evaluate_test() before select(): model selection must be done "
                "before the test split is read"
            )
        if self._test_done:
            raise RuntimeError("evaluate_test() called twice: the test split is read once")
        self._test_done = True
        t0 = time.perf_counter()
        test = self._records("test")
        counts, pred = self._counts(test)
        self.timings["test_s"] = time.perf_counter() - t0
        return self._result(test, counts, pred)

    def _result(self, test: list[SegRecord], counts: np.ndarray, pred: list[np.ndarray]) -> dict:
        a = self.a
        lead = LEAD_INDEX[TARGET_LEAD]
        return {
            "task": a.task,
            "protocol": a.protocol,
            "init": a.init,
            "label_fraction": a.label_fraction,
            "seed": a.seed,
            "step": self.step,
            "classes": list(WAVES),
            "target_lead": TARGET_LEAD,
            "records": self.names,
            "counts": {
                **{s: {"records": len(n)} for s, n in self.names.items()},
                "windows": self.num_windows,
            },
            "selection": self.selection,
            "val": _scores(self.val_counts, a),
            "test": _scores(counts, a),
            "test_records": {"ids": self.names["test"], "counts": counts.tolist()},
            # One test record for the figure: lead II, reference and predicted labels.
            "example": {
                "id": test[0].name,
                "signal": test[0].signal[lead].round(4).tolist(),
                "true": test[0].labels.tolist(),
                "pred": pred[0].astype(int).tolist(),
            },
            "timings": self.timings,
            "workdir": a.workdir,
            "data_dir": a.data,
            "fs": self.fs,
            "window": self.window,
            "devices": jax.device_count(),
            "config": to_dict(self.cfg),
            "args": args_dict(a),
        }
