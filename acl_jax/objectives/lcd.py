"""LCD: lead correlation with a momentum target, plus Barlow-style decorrelation across leads.

The original LCD paper was not available to us in full. This module follows the description
available: lead correlation with a momentum (EMA) target plus a Barlow-style decorrelation term.
Where a detail was open, the choice is ours and stated below.

Networks. Online: the lead-wise encoder f, a per-lead projector g and predictor q (MLPs shared
over leads). Target: f', g', a momentum copy of (f, g) whose parameters are `ema.Target`
variables (not nnx.Param: no gradient, no optimizer update; saved with the model state).
For N records (b per device), leads l in {1..L} (L = 12) and two augmented views v in {1, 2}:

    y^v_{i,l} = g(f(x^v)_{i,l})          online projections            (N, L, P)
    p^v_{i,l} = q(y^v_{i,l})             online predictions            (N, L, P)
    t^v_{i,l} = sg(g'(f'(x^v)_{i,l}))    target projections (sg = stop-gradient)

Valid slots V = {(i, l) : lead l of record i is present in both views}; c(a, b) = a . b /
(||a|| ||b||).

L_corr (lead correlation, BYOL-style, symmetrized): the online prediction of lead l in one view
matches the target projection of the same lead in the other view,

    L_corr = 1/|V| sum_{(i,l) in V} [ (2 - 2 c(p^1_il, t^2_il)) + (2 - 2 c(p^2_il, t^1_il)) ] / 2

L_dec (Barlow-style decorrelation across leads). Each projection dimension is standardized over
the valid slots of the global batch (all devices), per view:

    mu_p = mean_{(i,l) in V} y_ilp,  s_p^2 = mean_{(i,l) in V} (y_ilp - mu_p)^2  (biased)
    zn_ilp = (y_ilp - mu_p) / sqrt(s_p^2 + eps)                                  (eps = 1e-5)

then each record's (L x L) cross-lead correlation matrix C^v_i[l, m] = c(zn_il, zn_im) (diagonal
1) should have small off-diagonal entries; over the pairs Q = {(i, l, m) : (i,l), (i,m) in V,
l != m}:

    L_dec^v = 1/|Q| sum_{(i,l,m) in Q} C^v_i[l, m]^2,   L_dec = (L_dec^1 + L_dec^2) / 2

L = L_corr + lambda_dec L_dec (cfg.lcd.lambda_dec; eps = cfg.lcd.eps).

Choices: the global standardization removes the component every lead shares (Barlow Twins'
per-feature normalization), so C measures lead-specific information rather than a common offset;
squared cosine over standardized vectors (not a 1/P-scaled dot product) keeps C_i in [-1, 1]
whatever P. lambda_dec = 1: both terms are O(1) (L_corr in [0, 4], L_dec in [0, 1]; unrelated
directions give E[C^2] = 1/P). Means are pooled over slots and pairs (no per-record
weighting). Records with fewer than two valid leads contribute no pair. Predictor hidden width =
cfg.model.proj_hidden.

EMA (acl_jax.objectives.ema, shared with BYOL and MoCo v3): after optimizer update k (of
K = cfg.train.steps), tau_k = 1 - (1 - tau_base) (cos(pi min(k - 1, K) / K) + 1) / 2 and
theta' <- tau_k theta' + (1 - tau_k) theta over weights only, tau_base = 0.99
(cfg.loss.base_momentum). The target starts as a copy of the online weights; its
BatchNorm layers use batch statistics like the online ones (their running statistics are
ordinary BatchStat state).

Absent leads: slots not in V are replaced by 0 (`jnp.where`) before any arithmetic and are
excluded from every mean and from the standardization statistics, so their content (even NaN)
reaches neither the loss nor the gradients.

Sharding: inside `jax.shard_map` over `axis_name`, mu and s^2 are psums of per-device sums
divided by the global count (two-pass variance); every term is psum(sum) / psum(count), the same
on every device, so `jax.grad` outside the shard_map equals the single-device gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from acl_jax.config import Config, LcdConfig
from acl_jax.models import MLPHead
from acl_jax.objectives.collectives import global_sum
from acl_jax.objectives.ema import MomentumTargets
from acl_jax.objectives.ntxent import l2_normalize
from acl_jax.objectives.two_view import TwoViewObjective

# The (L x L) correlations are tiny; full float32 keeps them exact on accelerators whose
# default float32 matmul rounds its inputs (TF32, bf16 passes).
_PRECISION = lax.Precision.HIGHEST


def _masked_mean(values: jax.Array, mask: jax.Array, axis_name: str | None) -> jax.Array:
    # Global mean of `values` over `mask`; 0 when nothing is selected.
    sums = jnp.stack([jnp.where(mask, values, 0.0).sum(), mask.sum(dtype=jnp.float32)])
    total, count = global_sum(sums, axis_name)
    return total / jnp.maximum(count, 1.0)


def correlation_term(p1, p2, t1, t2, valid, axis_name: str | None) -> jax.Array:
    """L_corr. p, t: (b, L, P) predictions and target projections; valid: (b, L) bool."""
    pn1, pn2 = l2_normalize(p1), l2_normalize(p2)
    tn1, tn2 = l2_normalize(lax.stop_gradient(t1)), l2_normalize(lax.stop_gradient(t2))
    per_slot = (2.0 - 2.0 * jnp.sum(pn1 * tn2, -1) + 2.0 - 2.0 * jnp.sum(pn2 * tn1, -1)) / 2.0
    return _masked_mean(per_slot, valid, axis_name)


def decorrelation_term(y: jax.Array, valid: jax.Array, eps: float, axis_name: str | None):
    """L_dec for one view. y: (b, L, P) online projections (0 at invalid slots); valid (b, L)."""
    w = valid[..., None]
    count = global_sum(valid.sum(dtype=jnp.float32), axis_name)
    n = jnp.maximum(count, 1.0)
    mean = global_sum(jnp.where(w, y, 0.0).sum((0, 1)), axis_name) / n  # (P,)
    centered = jnp.where(w, y - mean, 0.0)
    var = global_sum(jnp.sum(centered * centered, (0, 1)), axis_name) / n
    u = l2_normalize(centered * lax.rsqrt(var + eps))
    corr = jnp.einsum("blp,bmp->blm", u, u, precision=_PRECISION)  # (b, L, L)
    num_leads = y.shape[1]
    pairs = valid[:, :, None] & valid[:, None, :] & ~jnp.eye(num_leads, dtype=bool)
    return _masked_mean(corr * corr, pairs, axis_name)


def lcd_loss(p1, p2, t1, t2, y1, y2, lead_valid, cfg: LcdConfig, axis_name: str | None = None):
    """LCD loss (module docstring) over the global batch.

    p1, p2: (b, L, P) online predictions; t1, t2: (b, L, P) target projections (no gradient
    flows into them); y1, y2: (b, L, P) online projections; lead_valid: (b, L) float {0, 1},
    1 where the lead is present in both views; cfg: static cfg.lcd.
    Returns (loss, {"loss_corr", "loss_dec"}).
    """
    arrays = (p1, p2, t1, t2, y1, y2)
    if p1.ndim != 3 or any(a.shape != p1.shape for a in arrays) or lead_valid.shape != p1.shape[:2]:
        raise ValueError(
            "lcd_loss: p1, p2, t1, t2, y1, y2 must all be (b, L, P) and lead_valid (b, L), got "
            f"{[a.shape for a in arrays]} and {lead_valid.shape}"
        )
    valid = lead_valid > 0.5
    # where, not multiply: an absent lead's content (even NaN) must not reach loss or gradient.
    p1, p2, t1, t2, y1, y2 = (
        jnp.where(valid[..., None], a.astype(jnp.float32), 0.0) for a in arrays
    )
    loss_corr = correlation_term(p1, p2, t1, t2, valid, axis_name)
    loss_dec = (
        decorrelation_term(y1, valid, cfg.eps, axis_name)
        + decorrelation_term(y2, valid, cfg.eps, axis_name)
    ) / 2.0
    return loss_corr + cfg.lambda_dec * loss_dec, {"loss_corr": loss_corr, "loss_dec": loss_dec}


class Lcd(MomentumTargets, TwoViewObjective):
    """LCD pretrainer: online encoder/projector/predictor and their momentum target."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        if not cfg.model.lead_wise:
            raise ValueError(
                "objective 'lcd' needs per-lead features: set --config.model.lead_wise=true"
            )
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m, dim = cfg.model, self.encoder.dim
        self.projector = MLPHead(dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self.predictor = MLPHead(m.proj_dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self.init_targets(cfg)
        self._lcd = cfg.lcd

    def _branches(self, x, lead_mask):
        # Leads outside cfg.model.leads are never encoded: they count as absent.
        lead_mask = self.encoder.encoded_mask(lead_mask)
        # BatchNorms skip absent leads (mask), so they cannot skew the statistics.
        y = self.projector(self.encoder(x, lead_mask).leads, mask=lead_mask)
        p = self.predictor(y, mask=lead_mask)
        t = self.target_projector(self.target_encoder(x, lead_mask).leads, mask=lead_mask)
        return y, p, lax.stop_gradient(t)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        y1, p1, t1 = self._branches(v1.x, v1.lead_mask)
        y2, p2, t2 = self._branches(v2.x, v2.lead_mask)
        valid = self.encoder.encoded_mask(v1.lead_mask) * self.encoder.encoded_mask(v2.lead_mask)
        return lcd_loss(p1, p2, t1, t2, y1, y2, valid, self._lcd, axis_name)
