"""What every objective provides to the trainer: a `Pretrainer` module and its loss.

A Pretrainer owns the encoder (`self.encoder`, the part the eval binary restores) and whatever
heads, predictors or momentum targets its objective needs. The trainer calls, inside
`shard_map` over the data axis,

    loss, metrics = model.loss(batch, keys, axis_name)

with `batch` the per-device slice of the global batch (see docs/contracts.md) and `keys` (b,)
one PRNG key per example, derived from the example's global position: an example draws the
same augmentation whatever the device count. After the optimizer update the trainer calls
`model.update_targets(step)`.
View generation belongs to the objective because objectives differ in what a positive pair
is (two augmentations, adjacent segments, same patient).
"""

from __future__ import annotations

import jax
from flax import nnx

from acl_jax.augment import View, make_augment, view_from_batch
from acl_jax.config import Config


class Pretrainer(nnx.Module):
    """Base class; subclasses set `self.encoder` and implement `loss`."""

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        raise TypeError(f"{type(self).__name__} must implement loss(batch, keys, axis_name)")

    def update_targets(self, step: jax.Array) -> None:
        """Hook for momentum/EMA targets, called after each optimizer update. Default: none."""


class TwoViews:
    """Makes two independently augmented views of each example from `cfg.augment`.

    Static config is closed over here once, so the traced step sees only arrays.
    """

    def __init__(self, cfg: Config, fs: int):
        self._fn = make_augment(cfg.augment, fs)

    def __call__(self, keys: jax.Array, batch: dict) -> tuple[View, View]:
        """keys (b,) per-example keys -> two Views with x (b, 12, W)."""
        pair = jax.vmap(jax.random.split)(keys)  # (b, 2)
        view = view_from_batch(batch)
        augment = jax.vmap(self._fn)
        return augment(pair[:, 0], view), augment(pair[:, 1], view)
