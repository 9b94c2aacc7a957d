"""SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021).

One network for both views: encoder f, projector g (3 linear layers, BatchNorm after each
including the output, where it has no affine parameters), predictor h (a bottleneck MLP:
Linear-BN-ReLU-Linear, hidden width proj_dim // 4 as the paper's 2048 -> 512 -> 2048).
With z = g(f(v)), p = h(z) for two views of each example and D(p, z) = -cos(p, z):

    L = (1/N) sum_i [ D(p1_i, sg(z2_i)) / 2 + D(p2_i, sg(z1_i)) / 2 ]        in [-1, 1]

(sg = stop-gradient: the paper's key ingredient against collapse), the mean over the N
examples of the global batch. No momentum encoder, no negatives.

Choices:
- The projector's hidden width is cfg.model.proj_hidden (the paper uses the encoder width,
  2048 for a ResNet-50); its output width is cfg.model.proj_dim.
- The paper keeps the predictor's learning rate constant; here one schedule (cfg.optim) drives
  all parameters: the paper's Table 1 reports 67.7% with the predictor's rate decayed too vs
  68.1% constant (only removing the predictor or freezing it at random init collapses).
- The collapse monitor `z_std` (std of z / ||z|| over the batch, Fig. 2) is logged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import MLPHead
from acl_jax.objectives.byol import check_pairs, cosine
from acl_jax.objectives.collectives import global_sum
from acl_jax.objectives.ema import Projector, normalized_std
from acl_jax.objectives.two_view import TwoViewObjective


def simsiam_loss(
    p1: jax.Array, p2: jax.Array, z1: jax.Array, z2: jax.Array, axis_name: str | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """SimSiam loss (see module docstring), global mean over the N examples.

    p1, p2: (b, P) predictions of views 1 and 2; z1, z2: (b, P) projections (stop-gradient
    applied here). Returns (loss, {}).
    """
    check_pairs("simsiam_loss", p1, p2, z1, z2)
    local = jnp.stack(
        [jnp.sum(cosine(p1, z2) + cosine(p2, z1)), jnp.asarray(p1.shape[0], jnp.float32)]
    )
    total = global_sum(local, axis_name)
    return -0.5 * total[0] / total[1], {}


class SimSiam(TwoViewObjective):
    """SimSiam pretrainer: shared encoder + projector + predictor, stop-gradient, no targets.

    cfg.model.pred_hidden overrides the predictor bottleneck width (0: proj_dim // 4).
    """

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.projector = Projector(
            self.encoder.dim,
            m.proj_hidden,
            m.proj_dim,
            num_layers=3,
            out_bn=True,
            bn_axis=bn_axis,
            rngs=rngs,
        )
        hidden = m.pred_hidden or max(m.proj_dim // 4, 1)
        self.predictor = MLPHead(m.proj_dim, hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        z1, z2 = self.project(self.projector, v1), self.project(self.projector, v2)
        loss, _ = simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2, axis_name)
        return loss, {"loss": loss, "z_std": normalized_std(z1, axis_name)}
