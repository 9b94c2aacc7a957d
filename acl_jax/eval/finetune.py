"""Fine-tuning: encoder + linear head trained on labelled train windows, early-stopped on val.

The classifier is a `Trainable` whose `loss(batch, keys, axis_name)` is the supervised loss,
so it trains with pretraining's own sharded step (`acl_jax.train.step.make_train_step`): the
forward pass runs per device inside `nnx.shard_map`, BatchNorm statistics are those of the
global batch (`bn_axis="data"`), and the loss is psum(local sums) / psum(local counts), the
global mean, so the gradient is that of one device holding the whole batch.

The train pipeline draws from the labelled records alone (no label, or not in the
label-fraction subset: never drawn), so a step at 1% of the labels reads one batch of records,
not a hundred, and no device computes on unlabelled rows; labels reach the batches through the
pipeline's `record` key. Batches keep every pipeline key, "rpeaks" included, so heartbeat-token
encoders (CLEAR) train the same way.

`--protocol hug` trains CLEAR-HUG's hierarchical head (acl_jax.models.hug.HugClassifier) on
the encoder's beat tokens with this same loop; with `freeze_encoder` the optimizer holds the
head's parameters only (`head_only`), so AdamW's weight decay cannot move the encoder either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acl_jax.config import Config
from acl_jax.data import pipeline
from acl_jax.eval import features
from acl_jax.eval.early_stopping import train_with_early_stopping
from acl_jax.eval.metrics import macro_metrics
from acl_jax.models import heads
from acl_jax.models.hug import HugClassifier, hug_probabilities
from acl_jax.models.roles import Trainable
from acl_jax.train.step import DATA_AXIS


class Classifier(Trainable):
    """encoder -> global features (B, D) -> linear head -> logits (B, C)."""

    freeze_encoder = False  # fine-tuning trains everything

    def __init__(self, encoder: nnx.Module, num_classes: int, single: bool, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.head = nnx.Linear(encoder.dim, num_classes, rngs=rngs)
        self.single = single  # softmax cross-entropy instead of per-class BCE

    def __call__(self, batch: dict) -> jax.Array:
        """batch with signal (b, 12, W), lead_mask (b, 12), rpeaks (b, K) -> logits (b, C)."""
        return self.head(features.encode(self.encoder, batch).global_)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        """Global mean of BCE (mean over classes) or softmax CE over the batch's rows."""
        del keys  # no augmentation: the random crops of the train pipeline are the only one
        return heads.classification_loss(self(batch), batch["labels"], self.single, axis_name)


def class_probabilities(model: Classifier, batch: dict) -> jax.Array:
    """(b, C) sigmoid (multi-label) or softmax (single-label) probabilities."""
    return heads.class_probabilities(model(batch), model.single)


def hug_batch_probabilities(model: HugClassifier, batch: dict) -> jax.Array:
    """`hug_probabilities` on a batch dict: (b, C)."""
    return hug_probabilities(model, batch["signal"], batch["lead_mask"], batch["rpeaks"])


def probabilities_fn(model: Trainable) -> features.Forward:
    """The (module, batch) -> (b, C) probability function of a classifier built here."""
    return hug_batch_probabilities if isinstance(model, HugClassifier) else class_probabilities


def synced_encoder(encoder: nnx.Module) -> nnx.Module:
    """A copy of the restored `encoder` (any type: ECGEncoder, CLEAR's BeatTransformer, ...)
    whose BatchNorm layers take their statistics over the global batch (axis "data"), as
    pretraining's did. The restored model was built with bn_axis=None for single-host
    inference; reusing its object keeps whatever architecture the objective built, where
    rebuilding would need to know every objective's encoder class. No BatchNorm: a plain copy.
    The copy has its own Variables (nnx.clone), so training it never changes `encoder`.
    """
    return nnx.with_attributes(
        nnx.clone(encoder), only=nnx.BatchNorm, raise_if_not_found=False, axis_name=DATA_AXIS
    )


def build_classifier(encoder: nnx.Module, num_classes: int, single: bool, seed: int) -> Classifier:
    """A fresh Classifier (linear head, seeded) on a trainable copy of `encoder`."""
    return Classifier(synced_encoder(encoder), num_classes, single, rngs=nnx.Rngs(seed))


def build_hug(
    encoder: nnx.Module,
    cfg: Config,
    num_classes: int,
    single: bool,
    seed: int,
    *,
    pool: str,
    freeze_encoder: bool,
) -> HugClassifier:
    """A fresh HugClassifier on a copy of `encoder` (groups = the checkpoint's model.regions).

    The encoder must produce beat tokens (CLEAR); the caller checks this with a clear error.
    """
    return HugClassifier(
        synced_encoder(encoder),
        num_classes,
        single,
        cfg.model.regions,
        pool=pool,
        freeze_encoder=freeze_encoder,
        rngs=nnx.Rngs(seed),
    )


def start_head_from_probe(classifier: Classifier, head) -> None:
    """LP-FT: sets the classifier's linear head to the probe's `LinearHead` (acl_jax.eval.save
    `probe_head`), folding its standardization in: logits = ((x - mean) / std) @ W + b =
    x @ (W / std) + (b - (mean / std) @ W), on the encoder's global features x."""
    weight, bias, mean, std = (
        np.asarray(getattr(head, k), np.float64) for k in ("weight", "bias", "mean", "std")
    )
    w, b = weight / std[:, None], bias - (mean / std) @ weight
    classifier.head.kernel.set_value(jnp.asarray(w, jnp.float32))
    classifier.head.bias.set_value(jnp.asarray(b, jnp.float32))


# Optimizer filter of a frozen-encoder protocol: the parameters under `model.head` only.
HEAD_PARAMS = nnx.All(nnx.Param, nnx.PathContains("head"))


def trainable(model: nnx.Module):
    """What the optimizer updates: the head only when the encoder is frozen, else every Param."""
    return HEAD_PARAMS if model.freeze_encoder else nnx.Param


def labelled_batches(stream: Iterator[dict], labels: np.ndarray) -> Iterator[dict]:
    """Pipeline batches of labelled records -> the same with "labels" (b, C) attached.

    labels: (num_records_in_split, C) float32 indexed by the `record` key.
    """
    for host in stream:
        yield {**host, "labels": labels[host["record"]]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuneOptions:
    steps: int
    lr: float
    eval_every: int
    patience: int  # evaluations without improvement before stopping
    batch_size: int
    seed: int
    encoder_lr_scale: float = 1.0  # the encoder's lr = lr x this (acl_jax.eval.early_stopping)


def finetune(
    model: Classifier | HugClassifier,
    cfg: Config,
    data_dir: str,
    train_split: str,
    train_index: np.ndarray,
    train_y: np.ndarray,
    val_split: str,
    val_index: np.ndarray,
    val_y: np.ndarray,
    classes: list[str],
    opts: FinetuneOptions,
    mesh: jax.sharding.Mesh,
) -> dict:
    """Trains `model` in place and leaves it at the best validation state.

    The optimizer updates `trainable(model)` (the head alone for a frozen encoder).
    train_index/val_index: positions of the labelled records in their split; *_y (N, C).
    Returns the selection record: best step, val macro AUROC per evaluated step, steps run.
    """
    num_train = int(pipeline.read_manifest(data_dir)["splits"][train_split]["num_records"])
    labels = np.zeros((num_train, len(classes)), np.float32)
    labels[train_index] = train_y
    n_proc = jax.process_count()
    bsz = features.global_batch_size(opts.batch_size)
    stream = iter(
        pipeline.train_dataset(
            data_dir,
            train_split,
            window=features.eval_window(cfg),
            max_beats=cfg.data.max_beats,
            batch_size=bsz // n_proc,
            seed=opts.seed,
            process_index=jax.process_index(),
            process_count=n_proc,
            records=train_index,  # labelled records only: a step reads one batch of records
        )
    )
    batches = labelled_batches(stream, labels)

    def validate() -> float:
        probs = features.record_outputs(
            features.inference_view(model),
            probabilities_fn(model),
            data_dir,
            val_split,
            cfg,
            mesh,
            batch_size=opts.batch_size,
        )[val_index]
        return macro_metrics(val_y, probs, classes)["macro_auroc"]

    sel = train_with_early_stopping(
        model,
        batches,
        opts,
        mesh,
        trainable=trainable(model),
        validate=validate,
        what="finetune",
        score_name="macro AUROC",
        lr_hint="lower --finetune-lr",
        no_score_hint="the val split has no class with both positive and negative records",
    )
    return {
        "best_step": sel["best_step"],
        "best_val_macro_auroc": sel["best_score"],
        "val_macro_auroc_by_step": sel["history"],
        "steps_run": sel["steps_run"],
        "train_seconds": sel["train_seconds"],
    }
