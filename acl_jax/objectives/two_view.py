"""Two augmented views of each example, and the base of the objectives that contrast them.

View generation belongs to the objective because objectives differ in what a positive pair is
(two augmentations, adjacent segments, same patient). Every objective's views are made by
`views(batch, keys)`, keys (b,) one PRNG key per example (acl_jax.models.roles.Trainable).
"""

from __future__ import annotations

import jax
from flax import nnx

from acl_jax.augment import View, make_augment, view_from_batch
from acl_jax.config import Config
from acl_jax.models import ECGEncoder
from acl_jax.models.roles import Trainable


class TwoViews:
    """Makes two independently augmented views of each example from `cfg.augment`.

    Static config is closed over here once, so the traced step sees only arrays.
    """

    def __init__(self, cfg: Config, fs: int):
        self._fn = make_augment(cfg.augment, fs)

    def __call__(self, batch: dict, keys: jax.Array) -> tuple[View, View]:
        """keys (b,) per-example keys -> two Views with x (b, 12, W)."""
        pair = jax.vmap(jax.random.split)(keys)  # (b, 2)
        view = view_from_batch(batch)
        augment = jax.vmap(self._fn)
        return augment(pair[:, 0], view), augment(pair[:, 1], view)


class TwoViewObjective(Trainable):
    """An `ECGEncoder` of cfg.model (built first, so heads draw their weights after it) and two
    augmented views of each example; subclasses add their heads and `loss`."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        self.encoder = ECGEncoder(cfg.model, bn_axis=bn_axis, rngs=rngs)
        self._views = TwoViews(cfg, fs)

    def views(self, batch: dict, keys: jax.Array) -> tuple[View, View]:
        return self._views(batch, keys)

    def project(self, head: nnx.Module, view: View) -> jax.Array:
        """head(global features of `view`): (b, 12, W) -> (b, P)."""
        return head(self.encoder(view.x, view.lead_mask).global_)
