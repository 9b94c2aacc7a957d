"""DLC: lead-wise contrastive learning with an intra-lead and an inter-lead InfoNCE term.

The original DLC paper was not available to us in full. This module follows the description
available: lead-wise contrastive learning with intra-lead and inter-lead terms. Where a detail
was open, the choice is ours and stated below.

Inputs for N records (b per device), leads l in {1..L} (L = 12), two augmented views v in {1, 2}:
per-lead projections z^v (N, L, P), z^v_{i,l} = head(h^v_{i,l}) where h^v = ECGEncoder(view
v).leads are the lead-wise encoder's per-lead features and `head` is one MLP shared by all leads
(the lead embedding added by the encoder lets it tell leads apart). Valid slots
V = {(i, l) : lead l of record i is present in both views} (lead_mask, after lead dropout). All
embeddings are L2-normalized, u = z / ||z||, and s(a, c) = a . c / tau (tau = cfg.loss.temperature).

L_intra (same lead, across records: NT-Xent per lead). Items S_l = {(j, l, w) : (j, l) in V}.
For an anchor a = (i, l, v) with (i, l) in V and positive p = (i, l, v'):

    l_intra(a) = -s(u_a, u_p) + log sum_{c in S_l \\ {a}} exp s(u_a, c)
    L_intra    = (sum over valid anchors of l_intra(a)) / (number of valid anchors, 2 |V|)

i.e. negatives are lead l of every other record on every device, both views. Our choice: the
mean is pooled over all valid anchors (a lead present in more records weighs more), not a mean of
per-lead means.

L_inter (different leads, same record). Items T_i = {(i, l', w) : (i, l') in V}; for a valid
anchor a = (i, l, v) with positive p = (i, l, v'):

    l_inter(a) = -s(u_a, u_p) + log sum_{c in T_i \\ {a}} exp s(u_a, c)
    L_inter    = (sum over valid anchors of l_inter(a)) / (2 |V|)

a (2L - 1)-way InfoNCE per record when all leads are present; a record with one valid lead gives
l_inter = log 1 = 0 for it. This is `acl_ecg.inter_region_terms` with regions replaced by leads.

L = w_intra L_intra + w_inter L_inter, weights --config.dlc.w_intra / w_inter (both 1 by
default).

Absent leads: a slot not in V is neither an anchor nor anyone's candidate, and its embedding is
replaced by 0 before any arithmetic (`jnp.where`), so its content (even NaN) reaches neither the
loss nor the gradients.

Sharding (docs/contracts.md): inside `jax.shard_map` over `axis_name`, L_intra all-gathers the
(b, L, P) embeddings of both views once and runs the L per-lead NT-Xents batched over leads
(vmap); L_inter needs no communication. Every term is psum(local sum) / psum(local count), the
same on every device, so `jax.grad` outside the shard_map equals the single-device gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config, DlcConfig
from acl_jax.models import MLPHead
from acl_jax.objectives.acl_ecg import inter_region_terms, per_unit_contrast_sums
from acl_jax.objectives.ntxent import l2_normalize
from acl_jax.objectives.two_view import TwoViewObjective


def intra_lead_terms(
    u1: jax.Array, u2: jax.Array, valid: jax.Array, temperature: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array]:
    """L_intra and its top-1 accuracy, pooled over valid anchors of every lead.

    u1, u2: (b, L, P) unit per-lead embeddings of the two views; valid: (b, L) bool.
    Returns (loss, acc) scalars, global over all devices of `axis_name`.
    """
    # The same per-unit NT-Xent as ACL-ECG's L_intra, pooled over all anchors instead of
    # averaged per unit.
    loss_sum, correct_sum, count = per_unit_contrast_sums(u1, u2, valid, temperature, axis_name)
    # max(count, 1): no valid lead anywhere gives 0, not 0/0.
    count = jnp.maximum(count.sum(), 1.0)
    return loss_sum.sum() / count, correct_sum.sum() / count


def dlc_loss(
    z1: jax.Array,
    z2: jax.Array,
    lead_valid: jax.Array,
    temperature: float,
    cfg: DlcConfig,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """DLC loss (module docstring) over the global batch.

    z1, z2: (b, L, P) per-lead projections of views 1 and 2; lead_valid: (b, L) float {0, 1},
    1 where the lead is present in both views; temperature > 0; cfg: static cfg.dlc.
    Returns (loss, metrics) with "loss_intra", "acc_intra", "loss_inter", "acc_inter" for the
    terms whose weight is > 0 (a zero-weight term is not traced).
    """
    if z1.ndim != 3 or z1.shape != z2.shape or lead_valid.shape != z1.shape[:2]:
        raise ValueError(
            f"dlc_loss: z1, z2 must be (b, L, P) alike and lead_valid (b, L), got {z1.shape}, "
            f"{z2.shape}, {lead_valid.shape}"
        )
    valid = lead_valid > 0.5
    # where, not multiply: an absent lead's content (even NaN) must not reach loss or gradient.
    u1 = l2_normalize(jnp.where(valid[..., None], z1, 0.0))
    u2 = l2_normalize(jnp.where(valid[..., None], z2, 0.0))
    metrics: dict[str, jax.Array] = {}
    loss = jnp.zeros((), jnp.float32)
    if cfg.w_intra > 0:
        loss_intra, acc_intra = intra_lead_terms(u1, u2, valid, temperature, axis_name)
        metrics |= {"loss_intra": loss_intra, "acc_intra": acc_intra}
        loss = loss + cfg.w_intra * loss_intra
    if cfg.w_inter > 0:
        loss_inter, acc_inter = inter_region_terms(u1, u2, valid, temperature, axis_name)
        metrics |= {"loss_inter": loss_inter, "acc_inter": acc_inter}
        loss = loss + cfg.w_inter * loss_inter
    return loss, metrics


class Dlc(TwoViewObjective):
    """DLC pretrainer: lead-wise encoder + one per-lead MLP projection head shared over leads."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        if not cfg.model.lead_wise:
            raise ValueError(
                "objective 'dlc' needs per-lead features: set --config.model.lead_wise=true"
            )
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.head = MLPHead(self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self._temperature, self._dlc = cfg.loss.temperature, cfg.dlc

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        # The head's BatchNorm skips absent leads (mask), so they cannot skew its statistics.
        # encoded_mask: leads outside cfg.model.leads are never encoded and count as absent.
        m1, m2 = self.encoder.encoded_mask(v1.lead_mask), self.encoder.encoded_mask(v2.lead_mask)
        z1 = self.head(self.encoder(v1.x, v1.lead_mask).leads, mask=m1)
        z2 = self.head(self.encoder(v2.x, v2.lead_mask).leads, mask=m2)
        valid = m1 * m2
        return dlc_loss(z1, z2, valid, self._temperature, self._dlc, axis_name)
