"""Pretrainers for the two-view contrastive objectives: ACL-ECG and SimCLR.

Both use the same encoder and an MLP projection head per feature level. The losses themselves
(formulas in their docstrings) live in acl_ecg.py and ntxent.py.
"""

from __future__ import annotations

import jax
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import ECGEncoder, MLPHead
from acl_jax.objectives.acl_ecg import acl_ecg_loss
from acl_jax.objectives.base import Pretrainer, TwoViews
from acl_jax.objectives.ntxent import nt_xent_with_metrics


class AclEcg(Pretrainer):
    """ACL-ECG: global NT-Xent + intra-region consistency + inter-region discrimination.

    Needs the lead-wise encoder (per-region features); the global and the region projections
    use separate heads because they are asked for different invariances.
    """

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        if not cfg.model.lead_wise:
            raise ValueError(
                "objective 'acl_ecg' needs region features: set --config.model.lead_wise=true"
            )
        self.encoder = ECGEncoder(cfg.model, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.global_head = MLPHead(
            self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs
        )
        self.region_head = MLPHead(
            self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs
        )
        self._views = TwoViews(cfg, fs)
        self._loss_cfg = cfg.loss

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self._views(keys, batch)
        f1 = self.encoder(v1.x, v1.lead_mask)
        f2 = self.encoder(v2.x, v2.lead_mask)
        g1, g2 = self.global_head(f1.global_), self.global_head(f2.global_)
        # Empty regions (no present lead) stay out of the head's BatchNorm statistics.
        r1 = self.region_head(f1.regions, f1.region_mask)
        r2 = self.region_head(f2.regions, f2.region_mask)
        region_mask = f1.region_mask * f2.region_mask
        return acl_ecg_loss(g1, g2, r1, r2, region_mask, self._loss_cfg, axis_name)


class SimCLR(Pretrainer):
    """SimCLR (Chen et al., ICML 2020): NT-Xent between two augmented views' projections."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        self.encoder = ECGEncoder(cfg.model, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.head = MLPHead(self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self._views = TwoViews(cfg, fs)
        self._temperature = cfg.loss.temperature

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self._views(keys, batch)
        z1 = self.head(self.encoder(v1.x, v1.lead_mask).global_)
        z2 = self.head(self.encoder(v2.x, v2.lead_mask).global_)
        loss, metrics = nt_xent_with_metrics(z1, z2, self._temperature, axis_name)
        return loss, {"loss": loss, **metrics}
