"""Per-sample wave segmentation on an encoder's per-time features, and its training loop.

Model (`Segmenter`): encoder.features_map (B, 12, W) -> (B, W', D) (acl_jax.models.encoder:
the backbone's feature map before its global pool), linearly interpolated along time to the
input length W (`jax.image.resize`, half-sample centres, so feature t' sits over the input
samples it summarizes), then a per-sample head: Linear(D -> hidden) + ReLU + Linear(hidden ->
4), or one Linear(D -> 4) with hidden = 0. Logits (B, W, 4) over none / P / QRS / T.
Protocols: `linear` freezes the encoder (stop_gradient, BatchNorm on running statistics, the
optimizer holds the head only, so weight decay cannot move it either); `finetune` trains both,
BatchNorm statistics over the global batch as in pretraining.

Loss: softmax cross-entropy over the VALID samples of the global batch (padding excluded),
psum(local sum) / psum(local count), so the step is that of one device holding the whole batch
(acl_jax.train.step.make_train_step). Early stopping on the validation records' mean Dice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from acl_jax.eval import features
from acl_jax.eval.early_stopping import train_with_early_stopping
from acl_jax.eval.finetune import FinetuneOptions, synced_encoder, trainable
from acl_jax.eval.ludb_windows import NUM_LABELS, Windows, stitch
from acl_jax.eval.metrics import dice_counts, dice_metrics
from acl_jax.models.roles import Trainable
from acl_jax.train.step import shard_batch

SEG_KEYS = ("signal", "lead_mask")  # what the model reads; training adds labels and valid


class SegHead(nnx.Module):
    """(B, W', D) per-time features -> (B, W, num_labels) logits (module docstring)."""

    def __init__(self, dim: int, hidden: int, num_labels: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.data(nnx.Linear(dim, hidden, rngs=rngs) if hidden > 0 else None)
        self.out = nnx.Linear(hidden if hidden > 0 else dim, num_labels, rngs=rngs)

    def __call__(self, fmap: jax.Array, length: int) -> jax.Array:
        b, _, d = fmap.shape
        h = jax.image.resize(fmap, (b, length, d), "linear")
        if self.hidden is not None:
            h = jax.nn.relu(self.hidden(h))
        return self.out(h)


class Segmenter(Trainable):
    """encoder -> per-time features -> SegHead; trains with the pretraining step."""

    def __init__(self, encoder: nnx.Module, *, hidden: int, freeze_encoder: bool, rngs):
        # Frozen: an inference view, so BatchNorm uses (and never updates) running statistics.
        self.encoder = features.inference_view(encoder) if freeze_encoder else encoder
        self.head = SegHead(encoder.dim, hidden, NUM_LABELS, rngs=rngs)
        self.freeze_encoder = freeze_encoder

    def __call__(self, batch: dict) -> jax.Array:
        """batch signal (b, 12, W), lead_mask (b, 12) -> logits (b, W, 4)."""
        fmap = self.encoder.features_map(batch["signal"], batch["lead_mask"])
        if self.freeze_encoder:
            fmap = jax.lax.stop_gradient(fmap)
        return self.head(fmap, batch["signal"].shape[-1])

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        """Global mean cross-entropy over valid samples (labels (b, W) int, valid (b, W))."""
        del keys  # no augmentation
        ce = optax.softmax_cross_entropy_with_integer_labels(self(batch), batch["labels"])
        valid = batch["valid"].astype(jnp.float32)
        total, count = jnp.sum(ce * valid), jnp.sum(valid)
        if axis_name is not None:
            total, count = jax.lax.psum((total, count), axis_name)
        loss = total / jnp.maximum(count, 1.0)
        return loss, {"loss_segmentation": loss}


def build_segmenter(encoder: nnx.Module, *, hidden: int, frozen: bool, seed: int) -> Segmenter:
    """A fresh Segmenter on a copy of the restored encoder (cross-device BN when it trains)."""
    enc = nnx.clone(encoder) if frozen else synced_encoder(encoder)
    return Segmenter(enc, hidden=hidden, freeze_encoder=frozen, rngs=nnx.Rngs(seed))


def seg_probabilities(model: Segmenter, batch: dict) -> jax.Array:
    """(b, W, 4) per-sample class probabilities."""
    return jax.nn.softmax(model(batch), axis=-1)


def _local(rows: np.ndarray) -> slice:
    """This process's share of a global batch of `rows` rows (processes in device order)."""
    per = len(rows) // jax.process_count()
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def predict(
    model: Segmenter, windows: Windows, lengths: list[int], mesh, batch_size: int
) -> list[np.ndarray]:
    """Per-record (S_r,) predicted labels: windows scored on every device, then stitched."""
    fn = features.sharded(seg_probabilities, mesh)
    view = features.inference_view(model)
    g = features.global_batch_size(batch_size)
    n = len(windows.record)
    probs = []
    for lo in range(0, n, g):
        idx = np.arange(lo, lo + g) % n  # the last batch wraps around; extra rows dropped
        idx = idx[_local(idx)]
        local = {k: getattr(windows, k)[idx] for k in SEG_KEYS}
        out = fn(view, shard_batch(local, mesh))
        probs.append(np.asarray(multihost_utils.process_allgather(out, tiled=True)))
    return stitch(np.concatenate(probs)[:n], windows, lengths)


def record_counts(pred: list[np.ndarray], true: list[np.ndarray]) -> np.ndarray:
    """(R, 3, 3) Dice statistics per record (acl_jax.eval.metrics.dice_counts)."""
    return np.stack([dice_counts(t, p) for t, p in zip(true, pred)])


def _train_batches(windows: Windows, g: int, seed: int):
    """Endless global batches of g window indices: seeded permutations, epoch after epoch."""
    rng = np.random.default_rng(seed)
    pool = np.zeros(0, np.int64)
    while True:
        while len(pool) < g:
            pool = np.concatenate([pool, rng.permutation(len(windows.record))])
        idx, pool = pool[:g], pool[g:]
        idx = idx[_local(idx)]
        yield {
            "signal": windows.signal[idx],
            "lead_mask": windows.lead_mask[idx],
            "labels": windows.labels[idx],
            "valid": windows.valid[idx],
        }


def train_segmenter(
    model: Segmenter,
    train: Windows,
    val: Windows,
    val_labels: list[np.ndarray],
    opts: FinetuneOptions,
    mesh,
) -> dict:
    """Trains `model` in place, keeps the state of best validation mean Dice; the selection."""
    g = features.global_batch_size(opts.batch_size)
    batches = _train_batches(train, g, opts.seed)
    lengths = [len(t) for t in val_labels]

    def validate() -> float:
        pred = predict(model, val, lengths, mesh, opts.batch_size)
        return dice_metrics(record_counts(pred, val_labels))["mean_dice"]

    sel = train_with_early_stopping(
        model,
        batches,
        opts,
        mesh,
        trainable=trainable(model),
        validate=validate,
        what="segmentation",
        score_name="mean Dice",
        lr_hint="lower the learning rate (--finetune-lr, or --head-lr for --protocol linear)",
        no_score_hint="the val records have no annotated wave and the model predicted none",
    )
    return {
        "best_step": sel["best_step"],
        "best_val_mean_dice": sel["best_score"],
        "val_mean_dice_by_step": sel["history"],
        "steps_run": sel["steps_run"],
        "train_seconds": sel["train_seconds"],
        "lr": opts.lr,
        "batch_size": g,
    }


__all__ = [
    "SegHead",
    "Segmenter",
    "build_segmenter",
    "predict",
    "record_counts",
    "seg_probabilities",
    "train_segmenter",
]
