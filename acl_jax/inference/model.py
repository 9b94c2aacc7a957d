"""A model directory and the object `acl_jax.load` returns.

Layout (docs/contracts.md): MODEL_DIR/model.json (format, config, rate, preprocessing spec,
encoder summary), encoder.npz (weights by state path, acl_jax.inference.arrays),
[classifier.npz + classifier.json] (acl_jax.inference.classifier), MODEL_CARD.md, card.json.

Embedding runs eval's own pieces: sliding windows (`pipeline.eval_windows`), window crops and
batches (`windows.crop_example` / `collate`), the sharded inference-mode forward
(`features.sharded(features.encoder_features, mesh)` on `features.inference_view`) and the
per-record mean of window features, so a record's embedding is its eval feature. Each window
is computed on its own (BatchNorm on running statistics), so the result does not depend on the
batch or the device count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from etils import epath
from flax import nnx
from tqdm import tqdm

from acl_jax.config import Config, from_dict
from acl_jax.data.preprocess import PreprocessConfig
from acl_jax.data.sources import BadRecord
from acl_jax.inference import classifier as classifier_lib
from acl_jax.inference.arrays import ModelFormatError, load_arrays, load_module_arrays
from acl_jax.inference.inputs import NpySpec, find_inputs, load_record

FORMAT = 1
MODEL_JSON = "model.json"
ENCODER = "encoder.npz"
ZOO = Path(__file__).resolve().parent.parent / "models_zoo"  # bundled models: one dir each
# Windows per device and step: eval's default --batch-size on a one-device host, where the
# embeddings are then bit-identical to eval's features (acl_jax.inference.runner).
DEVICE_BATCH = 64


def bundled_names() -> list[str]:
    """Names `acl_jax.load` accepts besides paths: ZOO/<name>/model.json (a file drop)."""
    return (
        sorted(p.name for p in ZOO.iterdir() if (p / MODEL_JSON).is_file()) if ZOO.is_dir() else []
    )


def resolve(name_or_path: str) -> epath.Path:
    """The model directory of a bundled name or a local/gs:// path; one-line error if neither."""
    text = str(name_or_path)
    if text in bundled_names():
        return epath.Path(ZOO / text)
    path = epath.Path(text)
    if (path / MODEL_JSON).is_file():
        return path
    if path.exists() or "/" in text or os.sep in text:
        raise ModelFormatError(
            f"{text} is not a model directory (no {MODEL_JSON}); write one with "
            "python -m acl_jax.export"
        )
    raise ModelFormatError(
        f"unknown model {text!r}: not a path, and the bundled models are "
        f"{', '.join(bundled_names()) or 'none yet'}"
    )


@dataclasses.dataclass
class Embeddings:
    """ids (N,) in input order (acl_jax.inference.inputs), features (N, D) float32, skipped
    [(id, reason)], absent {lead: number of records without it}."""

    ids: list[str]
    features: np.ndarray
    skipped: list[tuple[str, str]]
    absent: dict[str, int]


@dataclasses.dataclass
class Predictions:
    """ids (N,), probabilities (N, C) float32 per `labels`, decisions (N, C) bool at the
    head's thresholds, skipped [(id, reason)], absent (as Embeddings)."""

    ids: list[str]
    probabilities: np.ndarray
    labels: list[str]
    decisions: np.ndarray
    skipped: list[tuple[str, str]]
    absent: dict[str, int]


class Model:
    """A loaded model directory: `embed(paths)`, `predict(paths)` (with a classifier head)."""

    def __init__(self, directory: epath.Path, meta: dict, encoder: nnx.Module, head):
        self.directory = directory
        self.meta = meta
        self.encoder = encoder
        self.head: classifier_lib.LinearHead | classifier_lib.HugHeadArrays | None = head
        spec = meta["preprocessing"]
        self.preprocess = PreprocessConfig(**spec["filters"])
        self.window, self.stride = int(spec["window"]), int(spec["stride"])
        self.max_beats = int(spec["max_beats"])

    @property
    def config(self) -> Config:
        return from_dict(self.meta["config"])

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def labels(self) -> list[str]:
        return list(self.head.labels) if self.head else []

    def load_inputs(self, paths, npy: NpySpec | None = None):
        """Yields the number of inputs, then (Prepared | None, id, reason) per input in order:
        prepare's preprocessing. One thread: the work holds the GIL (threads measured slower),
        and it overlaps the devices' work anyway (acl_jax.inference.runner)."""
        inputs = find_inputs([paths] if isinstance(paths, (str, os.PathLike)) else list(paths))
        npy = npy or NpySpec()
        yield len(inputs)
        for inp in inputs:
            yield self._load_one(inp, npy)

    def _load_one(self, inp, npy):
        try:
            rec = load_record(
                inp,
                self.preprocess,
                window=self.window,
                rpeaks=bool(self.encoder.needs_rpeaks),
                npy=npy,
            )
            return rec, inp.id, None
        except BadRecord as e:
            return None, inp.id, str(e)

    def embed(
        self,
        paths: str | Sequence[str],
        *,
        fs: float | None = None,
        leads: Sequence[str] | None = None,
        device_batch: int = DEVICE_BATCH,
        devices=None,
        progress: bool = False,
        per_window=None,
        forward=None,
    ) -> Embeddings:
        """Per-record features (N, D) of the records under `paths` (files or directories).

        fs, leads: how to read .npy inputs (rate in Hz; lead names in row order). Records that
        cannot be used are listed in `skipped` with the reason; the rest are embedded.
        devices: the devices to run on (default: all); device_batch: windows per device and
        step. The result does not depend on `devices` (acl_jax.inference.runner).
        per_window: (fn, K): average fn's (n, K) outputs of the window features instead.
        forward: (module, forward, K): average forward(module, window batch) (n, K), run on
        the devices, instead (acl_jax.inference.runner).
        """
        from acl_jax.inference import runner

        npy = NpySpec(fs, tuple(leads) if leads else None)
        stream = self.load_inputs(paths, npy)
        total = next(stream)
        bar = tqdm(total=total, desc="embed", unit="rec", disable=not progress, file=sys.stderr)
        with bar:
            return runner.embed_stream(
                self, stream, device_batch, devices, bar, per_window, forward
            )

    def _hug_module(self) -> nnx.Module:
        """The encoder with its HUG head (acl_jax.models.hug.HugClassifier), weights loaded."""
        from acl_jax.models.hug import HugClassifier

        head = self.head
        single = head.activation == "softmax"
        module = HugClassifier(
            self.encoder, len(head.labels), single, head.regions, pool=head.pool, rngs=nnx.Rngs(0)
        )
        load_module_arrays(module.head, head.arrays, str(self.directory / classifier_lib.ARRAYS))
        return module

    def predict(self, paths: str | Sequence[str], **kw) -> Predictions:
        """Class probabilities (N, C) of the head; same arguments as `embed`."""
        if self.head is None:
            raise ModelFormatError(
                f"{self.directory} has no classifier head: export it with "
                "python -m acl_jax.export --classifier DIR"
            )
        if isinstance(self.head, classifier_lib.HugHeadArrays):  # on device, per window
            from acl_jax.eval.finetune import hug_batch_probabilities  # eval's own forward

            forward = (self._hug_module(), hug_batch_probabilities, len(self.labels))
            e = self.embed(paths, forward=forward, **kw)
            p = e.features
        elif self.head.aggregate == "probabilities":  # a fine-tuned head: per window, averaged
            e = self.embed(paths, per_window=(self.head.probabilities, len(self.labels)), **kw)
            p = e.features
        else:
            e = self.embed(paths, **kw)
            p = (
                self.head.probabilities(e.features)
                if len(e.ids)
                else np.zeros((0, len(self.labels)))
            )
        p = p.astype(np.float32)
        decisions = p >= np.asarray(self.head.thresholds, np.float32)
        return Predictions(e.ids, p, self.labels, decisions, e.skipped, e.absent)


def load(name_or_path: str) -> Model:
    """Loads a model directory (path, gs:// path, or bundled name); no pickle, no code runs."""
    from acl_jax.objectives import build_pretrainer

    directory = resolve(name_or_path)
    path = directory / MODEL_JSON
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ModelFormatError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
        cfg, fs = from_dict(meta["config"]), int(meta["fs"])
        PreprocessConfig(**meta["preprocessing"]["filters"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        if isinstance(e, ModelFormatError):
            raise
        raise ModelFormatError(f"{path} is malformed ({type(e).__name__}: {e})") from None
    encoder = build_pretrainer(cfg, fs=fs, bn_axis=None, rngs=nnx.Rngs(0)).encoder
    load_module_arrays(encoder, load_arrays(directory / ENCODER), str(directory / ENCODER))
    head = None
    if classifier_lib.has_classifier(directory):
        head = classifier_lib.read_classifier(directory)
        if isinstance(head, classifier_lib.HugHeadArrays) and not encoder.beat_tokens:
            raise ModelFormatError(
                f"{directory}: the classifier is a HUG head (beat tokens), the encoder "
                f"{type(encoder).__name__} makes none"
            )
        if head.dim != encoder.dim:
            raise ModelFormatError(
                f"{directory}: the classifier reads {head.dim} features, the encoder gives "
                f"{encoder.dim}"
            )
    return Model(directory, meta, encoder, head)


def absent_leads_warning(absent: dict[str, int], n: int) -> str | None:
    """One warning line naming the leads absent from some records (masked as in training)."""
    if not absent:
        return None
    parts = ", ".join(f"{k} ({v} of {n} records)" for k, v in absent.items())
    return f"warning: absent leads, masked exactly as in training: {parts}"


__all__ = ["Embeddings", "Model", "Predictions", "bundled_names", "load", "resolve"]
