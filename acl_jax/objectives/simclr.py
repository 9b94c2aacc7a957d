"""SimCLR (Chen et al., ICML 2020): NT-Xent between two augmented views' projections.

z^v = head(encoder(view v).global_), L = NT-Xent(z^1, z^2; tau = cfg.loss.temperature)
(formula in acl_jax.objectives.ntxent). ACL-ECG without its region terms; CMSC and 3KG are
SimCLR with other views and same-patient positives (`contrast` overridden).
"""

from __future__ import annotations

import jax
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import MLPHead
from acl_jax.objectives.ntxent import nt_xent_with_metrics
from acl_jax.objectives.two_view import TwoViewObjective


class SimCLR(TwoViewObjective):
    """Encoder + MLP projection head, NT-Xent over the global batch."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.head = MLPHead(self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self._temperature = cfg.loss.temperature

    def contrast(self, z1: jax.Array, z2: jax.Array, batch: dict, axis_name: str | None):
        """Projections (b, P) of the two views -> (loss, metrics)."""
        del batch  # positives are the two views of the same example
        loss, metrics = nt_xent_with_metrics(z1, z2, self._temperature, axis_name)
        return loss, {"loss": loss, **metrics}

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        z1, z2 = self.project(self.head, v1), self.project(self.head, v2)
        return self.contrast(z1, z2, batch, axis_name)
