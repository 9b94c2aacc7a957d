"""The two roles a model plays in this codebase: something the train step trains, and an encoder.

`Trainable`: anything `acl_jax.train.step` can train. The step calls, inside `shard_map` over
the data axis,

    loss, metrics = model.loss(batch, keys, axis_name)

with `batch` the per-device slice of the global batch (docs/contracts.md) and `keys` (b,) one
PRNG key per example, derived from the example's global position (an example draws the same
augmentation whatever the device count); after the optimizer update it calls
`model.update_targets(step)`. Every pretraining objective is one (acl_jax.objectives), and so
are the eval binary's fine-tuned classifier, segmenter and HUG classifier.

`Encoder`: what evaluation asks of a pretrained encoder (the part a checkpoint's `encoder`
attribute holds), declared rather than probed with hasattr:
    dim            feature width D of `Features.global_` (B, D)
    needs_rpeaks   called as encoder(x, lead_mask, rpeaks) instead of encoder(x, lead_mask)
    beat_tokens    has `tokens(x, lead_mask, rpeaks)` heartbeat tokens (--protocol hug)
    dense          has `features_map(x, lead_mask) -> (B, T', D)` per-time features
                   (--task ludb_segmentation)
A pretraining objective may ask more of the encoder it builds itself (ACL-ECG: the lead-wise
ECGEncoder's region features, `Features.regions_raw` via `raw_regions=True`); evaluation never
does, so those stay outside this role.
"""

from __future__ import annotations

import jax
from flax import nnx


class Trainable(nnx.Module):
    """Base class of what the train step trains; subclasses implement `loss`."""

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        raise TypeError(f"{type(self).__name__} must implement loss(batch, keys, axis_name)")

    def update_targets(self, step: jax.Array) -> None:
        """Hook for momentum/EMA targets, called after each optimizer update. Default: none."""


class Encoder(nnx.Module):
    """Base class of the encoders evaluation restores (see the module docstring)."""

    dim: int
    needs_rpeaks: bool = False
    beat_tokens: bool = False

    @property
    def dense(self) -> bool:
        """True when `features_map` gives per-time features."""
        return False

    def features_map(self, x: jax.Array, lead_mask: jax.Array) -> jax.Array:
        raise ValueError(f"{type(self).__name__} has no per-time features (features_map)")
