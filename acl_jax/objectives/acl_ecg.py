"""ACL-ECG anatomy-aware contrastive loss: global, intra-region and inter-region terms.

The ACL-ECG paper (Sensors 2026) was not available; this module implements the following design.

Inputs for N records (b per device), two augmented views v in {1, 2}: global projections
g_v (N, P); region projections r_v (N, R, P) (R anatomical lead groups, acl_jax.leads); a region
mask m (N, R) in {0, 1}, the product of the two views' masks, so m[i, r] = 1 iff region r has a
present lead in both views of record i. All embeddings are L2-normalized, u = x / ||x||, and
s(a, c) = a . c / tau.

L_global: NT-Xent (acl_jax.objectives.ntxent) over the 2N global projections.

L_intra (same region, across records): for each region r separately, an NT-Xent over the set
S_r = {(j, r, w) : m[j, r] = 1}. For a valid anchor a = (i, r, v) with positive p = (i, r, v'):

    l_intra(a) = -s(u_a, u_p) + log sum_{c in S_r \\ {a}} exp s(u_a, u_c)
    L_r        = mean of l_intra(a) over the valid anchors of region r (2 * sum_i m[i, r] of them)
    L_intra    = mean of L_r over the regions with at least one valid anchor in the global batch

Invalid anchors contribute nothing and are no one's candidate.

L_inter (different regions, same record): for a valid anchor a = (i, r, v), the candidates are
T_i = {(i, r', w) : m[i, r'] = 1}, i.e. its positive (i, r, v') and the other present regions of
the same record in both views, a (2R - 1)-way InfoNCE when all regions are present:

    l_inter(a) = -s(u_a, u_p) + log sum_{c in T_i \\ {a}} exp s(u_a, u_c)
    L_inter    = (sum over valid anchors of l_inter(a)) / (number of valid anchors, 2 sum m)

An anchor whose record has no other present region has only its positive: l_inter = log 1 = 0.

L = w_global L_global + w_intra L_intra + w_inter L_inter, weights from cfg.acl_ecg; a term whose
weight is 0 is not traced (the config is static) and its metrics are absent.

L_inter variants (cfg.acl_ecg.region_objective; the metrics keep the names loss_inter/acc_inter;
with w_inter = 0 the term is off and the variant is unused):

- "within_record": L_inter above, on the region projections r_v (the default until issue 15).
- "within_record_raw": the same formula on q_v (N, R, P), the region head applied to regions
  pooled from the per-lead features BEFORE the learned lead embedding is added
  (`Features.regions_raw`); L_global and L_intra keep r_v. With the embedding, the regions of a
  record differ by a learned offset that tells them apart without looking at the signal (L_inter
  falls to ~0.06 within 300 steps); without it, only the signals can separate them. Unlike
  model.region_embed=false, L_intra's features keep the embedding.
- "inter_alignment" (the default): a record's OTHER regions in the OTHER view are positives and
  every region of every other record (both views, all devices) is a negative, a multi-positive
  InfoNCE in the "L_out" form of supervised contrastive learning
  (acl_jax.objectives.multi_positive). This is how a public reimplementation reads the paper's
  inter-region equation ("intra-region consistency while enhancing inter-region
  discriminability"). For a valid anchor a = (i, r, v):

    Pos(a)     = {(i, r', v') : r' != r, m[i, r'] = 1}          (v' the other view)
    Neg(a)     = {(j, r'', w) : j != i, m[j, r''] = 1}          (any region, either view)
    C(a)       = Pos(a) u Neg(a)
    log p(a,c) = s(u_a, u_c) - log sum_{c' in C(a)} exp s(u_a, u_c')
    l_align(a) = -(1 / |Pos(a)|) sum_{p in Pos(a)} log p(a, p)
    L_inter    = mean of l_align(a) over the valid anchors with |Pos(a)| > 0 (0 if none)

  The anchor's own other view (i, r, v') and its record's other regions in the same view
  (i, r', v) are neither positives nor negatives. Together with L_intra this pulls the regions
  of one record together and apart from other records; it no longer asks them to differ.
  acc_inter: fraction of those anchors whose top-1 candidate is in Pos(a).

Region heads (cfg.acl_ecg.region_heads): r_v[:, k] = head_k(region k) with one MLP head per
region instead of one head shared by all regions; combinable with every variant. (Note: with
within_record, region-specific heads can also tell regions apart without the signal.)

Why inter_alignment is the default, and what within_record was for. within_record was the first
default, on the argument that L_inter should keep the regions of one heart apart (inferior vs
lateral of the same beat) and leave separating patients to L_intra, with no communication and
b (2R)^2 similarities instead of (2bR, 2NR). Measured, that argument did not hold: the learned
lead embedding tells a record's regions apart without the signal (L_inter ~0.06 within 300
steps), and dropping the term (w_inter = 0), hiding the embedding from it (within_record_raw) or
giving each region its own head changed test AUROC by <= 0.001 at 1,500 steps. inter_alignment,
which asks a record's regions to agree with each other across views and to differ from other
records, had the best mean validation AUROC over 3 seeds (issue 15; README, "ACL-ECG's region
objective and the baselines"), so it is the default; its cost is one more all-gather of the
region embeddings and a (2bR, 2NR) similarity matrix (at N = 4096, R = 4: 32,768 candidates per
anchor, 134 MB per device for b = 128 in float32).

Sharding: as in ntxent, inside `jax.shard_map` over `axis_name`, one all_gather of (b, R, P) per
view serves all R regions of L_intra (batched over R, no per-region loop), and every term is
psum(local sums) / psum(local counts), the same on every device. inter_alignment gathers the
region embeddings and masks likewise and scores the 2bR local anchors against the 2NR
gathered candidates (a (2bR, 2NR) similarity matrix).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import AclEcgConfig, Config
from acl_jax.models import MLPHead
from acl_jax.objectives.collectives import gather, global_sum, pair_indices
from acl_jax.objectives.ntxent import info_nce, l2_normalize, nt_xent_with_metrics
from acl_jax.objectives.region_alignment import inter_alignment_terms
from acl_jax.objectives.two_view import TwoViewObjective

# info_nce batched over a leading axis (regions for L_intra, records for L_inter) with a
# positive index and temperature shared by every slice.
_batched_info_nce = jax.vmap(info_nce, in_axes=(0, 0, None, 0, None))


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    # 0/0 -> 0 (e.g. a region absent from the whole batch), with a finite gradient.
    return num / jnp.maximum(den, 1.0)


def per_unit_contrast_sums(
    u1: jax.Array, u2: jax.Array, valid: jax.Array, temperature: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """NT-Xent per unit (region or lead) across records: for unit r, anchors are (i, r, view)
    and candidates every record's unit r in both views, on every device.

    u1, u2: (b, U, P) unit embeddings of the two views; valid: (b, U) bool.
    Returns global (loss_sum, correct_sum, count), each (U,): callers choose the average
    (ACL-ECG: mean over units of per-unit means; DLC: pooled over all anchors).
    """
    b = u1.shape[0]
    # Unit-major layout: (U, 2b, P) local anchors, (U, 2N, P) global candidates.
    anchors = jnp.concatenate([u1, u2]).transpose(1, 0, 2)
    candidates = jnp.concatenate([gather(u1, axis_name), gather(u2, axis_name)])
    candidates = candidates.transpose(1, 0, 2)
    all_valid = gather(valid, axis_name)
    n = all_valid.shape[0]
    cand_valid = jnp.concatenate([all_valid, all_valid]).T  # (U, 2N)
    anchor_valid = jnp.concatenate([valid, valid]).T  # (U, 2b)
    self_index, positive_index = pair_indices(b, n, axis_name)
    not_self = jnp.arange(2 * n)[None, :] != self_index[:, None]  # (2b, 2N)
    mask = not_self[None] & cand_valid[:, None, :]  # (U, 2b, 2N)
    loss, correct = _batched_info_nce(anchors, candidates, positive_index, mask, temperature)
    sums = jnp.stack(
        [
            jnp.where(anchor_valid, loss, 0.0).sum(axis=1),
            (correct & anchor_valid).sum(axis=1, dtype=jnp.float32),
            anchor_valid.sum(axis=1, dtype=jnp.float32),
        ]
    )
    return global_sum(sums, axis_name)


def intra_region_terms(
    u1: jax.Array, u2: jax.Array, valid: jax.Array, temperature: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array]:
    """L_intra and its top-1 accuracy over valid anchors.

    u1, u2: (b, R, P) unit region embeddings of the two views; valid: (b, R) bool.
    Returns (loss, acc) scalars, global over all devices of `axis_name`.
    """
    loss_sum, correct_sum, count = per_unit_contrast_sums(u1, u2, valid, temperature, axis_name)
    present = (count > 0).astype(jnp.float32)
    loss = _safe_div(jnp.sum(_safe_div(loss_sum, count) * present), present.sum())
    return loss, _safe_div(correct_sum.sum(), count.sum())


def inter_region_terms(
    u1: jax.Array, u2: jax.Array, valid: jax.Array, temperature: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array]:
    """L_inter and its top-1 accuracy over valid anchors (negatives within each record).

    u1, u2: (b, R, P) unit region embeddings of the two views; valid: (b, R) bool.
    Returns (loss, acc) scalars, global over all devices of `axis_name`.
    """
    num_regions = u1.shape[1]
    embeddings = jnp.concatenate([u1, u2], axis=1)  # (b, 2R, P): view 1 regions, view 2 regions
    slot_valid = jnp.concatenate([valid, valid], axis=1)  # (b, 2R)
    positive_index = (jnp.arange(2 * num_regions) + num_regions) % (2 * num_regions)
    not_self = ~jnp.eye(2 * num_regions, dtype=bool)
    mask = not_self[None] & slot_valid[:, None, :]  # (b, 2R, 2R)
    loss, correct = _batched_info_nce(embeddings, embeddings, positive_index, mask, temperature)
    sums = jnp.stack(
        [
            jnp.where(slot_valid, loss, 0.0).sum(),
            (correct & slot_valid).sum(dtype=jnp.float32),
            slot_valid.sum(dtype=jnp.float32),
        ]
    )
    loss_sum, correct_sum, count = global_sum(sums, axis_name)
    return _safe_div(loss_sum, count), _safe_div(correct_sum, count)


def _check_inputs(g1, g2, r1, r2, region_mask) -> None:
    if g1.ndim != 2 or g1.shape != g2.shape:
        raise ValueError(f"acl_ecg_loss: g1, g2 must be (b, P) alike, got {g1.shape}, {g2.shape}")
    if r1.ndim != 3 or r1.shape != r2.shape:
        raise ValueError(
            f"acl_ecg_loss: r1, r2 must be (b, R, P) alike, got {r1.shape}, {r2.shape}"
        )
    if r1.shape[0] != g1.shape[0] or region_mask.shape != r1.shape[:2]:
        raise ValueError(
            f"acl_ecg_loss: batch/region sizes disagree: g {g1.shape}, r {r1.shape}, "
            f"region_mask {region_mask.shape} (expected {r1.shape[:2]})"
        )


def acl_ecg_loss(
    g1: jax.Array,
    g2: jax.Array,
    r1: jax.Array,
    r2: jax.Array,
    region_mask: jax.Array,
    cfg: AclEcgConfig,
    temperature: float,
    axis_name: str | None = None,
    raw: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """ACL-ECG loss (see module docstring) over the global batch.

    g1, g2: (b, P) global projections of views 1 and 2; r1, r2: (b, R, P) region projections;
    region_mask: (b, R) float {0, 1}, the product of the two views' region masks; cfg: the static
    term weights and region objective (cfg.acl_ecg); temperature = cfg.loss.temperature;
    raw: (q1, q2) (b, R, P) projections of the regions pooled without the lead embedding, which
    L_inter uses when cfg.region_objective is "within_record_raw" (required then, else unused).
    Returns (loss scalar, metrics) with metrics "loss_global", "acc_global", "loss_intra",
    "acc_intra", "loss_inter", "acc_inter" for the terms whose weight is > 0.
    """
    _check_inputs(g1, g2, r1, r2, region_mask)
    use_raw = cfg.region_objective == "within_record_raw" and cfg.w_inter > 0
    if use_raw:
        if raw is None:
            raise ValueError(
                "acl_ecg_loss: region_objective 'within_record_raw' needs raw=(q1, q2)"
            )
        _check_inputs(g1, g2, *raw, region_mask)
    tau = temperature
    metrics: dict[str, jax.Array] = {}
    loss = jnp.zeros((), jnp.float32)
    if cfg.w_global > 0:
        loss_global, m = nt_xent_with_metrics(g1, g2, tau, axis_name)
        metrics |= {"loss_global": loss_global, "acc_global": m["acc"]}
        loss = loss + cfg.w_global * loss_global
    if cfg.w_intra > 0 or cfg.w_inter > 0:
        u1, u2 = l2_normalize(r1), l2_normalize(r2)
        valid = region_mask > 0.5
        if cfg.w_intra > 0:
            loss_intra, acc_intra = intra_region_terms(u1, u2, valid, tau, axis_name)
            metrics |= {"loss_intra": loss_intra, "acc_intra": acc_intra}
            loss = loss + cfg.w_intra * loss_intra
        if cfg.w_inter > 0:
            if cfg.region_objective == "inter_alignment":
                inter = inter_alignment_terms(u1, u2, valid, tau, axis_name)
            elif use_raw:
                inter = inter_region_terms(*map(l2_normalize, raw), valid, tau, axis_name)
            else:
                inter = inter_region_terms(u1, u2, valid, tau, axis_name)
            loss_inter, acc_inter = inter
            metrics |= {"loss_inter": loss_inter, "acc_inter": acc_inter}
            loss = loss + cfg.w_inter * loss_inter
    return loss, metrics


class AclEcg(TwoViewObjective):
    """ACL-ECG: global NT-Xent + intra-region consistency + an inter-region term.

    Needs the lead-wise encoder (per-region features); the global and the region projections
    use separate heads because they are asked for different invariances. With
    cfg.acl_ecg.region_heads every region has its own head (`region_heads`), else one shared
    `region_head`.
    """

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        if not cfg.model.lead_wise:
            raise ValueError(
                "objective 'acl_ecg' needs region features: set --config.model.lead_wise=true"
            )
        a = cfg.acl_ecg
        if a.region_objective == "within_record_raw" and not cfg.model.region_embed:
            raise ValueError(
                "acl_ecg.region_objective='within_record_raw' with model.region_embed=false: "
                "every region is already pooled without the lead embedding; use 'within_record'"
            )
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m, dim = cfg.model, self.encoder.dim

        def head():
            return MLPHead(dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)

        self.global_head = head()
        if a.region_heads:
            self.region_heads = nnx.List([head() for _ in range(self.encoder.num_regions)])
        else:
            self.region_head = head()
        self._weights, self._temperature = a, cfg.loss.temperature
        self._raw = a.region_objective == "within_record_raw" and a.w_inter > 0

    def project_regions(self, regions: jax.Array, mask: jax.Array) -> jax.Array:
        """(b, R, D) region features, (b, R) mask -> (b, R, P) region projections. Empty regions
        (no present lead) stay out of the heads' BatchNorm statistics."""
        if self._weights.region_heads:
            heads = enumerate(self.region_heads)
            return jnp.stack([h(regions[:, k], mask[:, k]) for k, h in heads], axis=1)
        return self.region_head(regions, mask)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        f1 = self.encoder(v1.x, v1.lead_mask, raw_regions=self._raw)
        f2 = self.encoder(v2.x, v2.lead_mask, raw_regions=self._raw)
        g1, g2 = self.global_head(f1.global_), self.global_head(f2.global_)
        r1 = self.project_regions(f1.regions, f1.region_mask)
        r2 = self.project_regions(f2.regions, f2.region_mask)
        raw = None
        if self._raw:
            raw = (
                self.project_regions(f1.regions_raw, f1.region_mask),
                self.project_regions(f2.regions_raw, f2.region_mask),
            )
        region_mask = f1.region_mask * f2.region_mask
        return acl_ecg_loss(
            g1, g2, r1, r2, region_mask, self._weights, self._temperature, axis_name, raw
        )
