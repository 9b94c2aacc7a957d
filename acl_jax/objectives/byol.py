"""BYOL (Grill et al., "Bootstrap your own latent", NeurIPS 2020).

Online network: encoder f, projector g (Linear-BN-ReLU-Linear), predictor q (same shape).
Target network: copies of f and g whose weights xi are an EMA of the online weights theta,
updated after every optimizer step with BYOL's cosine schedule tau: tau_base -> 1 (ema.py).
For two views v1, v2 of each example, with p = q(g(f(v))) online and z' = g_xi(f_xi(v)) target:

    d(p, z') = || p / ||p|| - z' / ||z'|| ||^2 = 2 - 2 cos(p, z')
    L = (1/N) sum_i [ d(p1_i, sg(z'2_i)) + d(p2_i, sg(z'1_i)) ]        in [0, 8]

(sg = stop-gradient), the mean over the N examples of the global batch of BYOL's symmetrized
loss L + L~ (paper eq. 2; deepmind-research byol_experiment.py sums both directions, then
takes the batch mean).

Choices:
- The target network runs in training mode: its BatchNorms normalize with the statistics of
  the current (global) batch and update their own running statistics, as deepmind-research's
  BYOL does (`is_training=True` for the target forward pass, its own `target_state`). Only
  its weights are EMAs; its running statistics are never used (evaluation reads the online
  encoder).
- tau_base = cfg.loss.base_momentum, 0.99 (not the paper's 0.996) for runs of ~2k steps: see ema.py.
- Global features (`Features.global_`), so it works with lead_wise true or false.
- Optimizer: whatever cfg.optim says (AdamW in configs/byol_ptbxl.py), not the paper's LARS.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import MLPHead
from acl_jax.objectives.collectives import global_sum
from acl_jax.objectives.ema import MomentumTargets, normalized_std
from acl_jax.objectives.ntxent import l2_normalize
from acl_jax.objectives.two_view import TwoViewObjective


def check_pairs(name: str, *arrays: jax.Array) -> None:
    """All arrays (b, P) of one shape, or a ValueError naming the loss."""
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(
            f"{name} expects (b, P) arrays of one shape, got {[a.shape for a in arrays]}"
        )


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Row-wise cosine similarity (b,) of (b, P) arrays, float32; `b` is not differentiated."""
    return jnp.sum(l2_normalize(a) * jax.lax.stop_gradient(l2_normalize(b)), axis=-1)


def byol_loss(
    p1: jax.Array, p2: jax.Array, t1: jax.Array, t2: jax.Array, axis_name: str | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BYOL loss (see module docstring), global mean over the N examples.

    p1, p2: (b, P) online predictions of views 1 and 2; t1, t2: (b, P) target projections
    (stop-gradient applied here). Returns (loss, {"cos": mean cos(p, z') over both
    directions}).
    """
    check_pairs("byol_loss", p1, p2, t1, t2)
    cos12, cos21 = cosine(p1, t2), cosine(p2, t1)
    local = jnp.stack([jnp.sum(cos12 + cos21), jnp.asarray(p1.shape[0], jnp.float32)])
    total = global_sum(local, axis_name)
    mean_cos_sum = total[0] / total[1]  # mean over examples of cos12 + cos21
    return 4.0 - 2.0 * mean_cos_sum, {"cos": mean_cos_sum / 2.0}


class BYOL(MomentumTargets, TwoViewObjective):
    """BYOL pretrainer: online encoder + projector + predictor, EMA target encoder + projector."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.projector = MLPHead(
            self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs
        )
        self.predictor = MLPHead(
            m.proj_dim, m.pred_hidden or m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs
        )
        self.init_targets(cfg)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        z1, z2 = self.project(self.projector, v1), self.project(self.projector, v2)
        t1 = self.target_projector(self.target_encoder(v1.x, v1.lead_mask).global_)
        t2 = self.target_projector(self.target_encoder(v2.x, v2.lead_mask).global_)
        loss, metrics = byol_loss(self.predictor(z1), self.predictor(z2), t1, t2, axis_name)
        return loss, {"loss": loss, **metrics, "z_std": normalized_std(z1, axis_name)}
