"""Two-view contrastive loss with SOFT targets in [0, 1] (Beat-SSL, arXiv 2601.16147).

NT-Xent (acl_jax.objectives.ntxent) asks every anchor to pick its positive out of all other
embeddings: a one-hot target, so two records whose beats look alike are pushed apart as hard
negatives. Here the target of anchor k over candidate c is a distribution built from the
similarity of separate, stop-gradient "similarity features" f (beat features, Beat-SSL):

    rows: 2N of them, view 1 of items 0..N-1 then view 2 (an item = a record or a beat);
          valid_i says whether item i takes part, has_i whether its features mean anything
    mu    = mean of f over the rows with has (both views, global batch)
    v_r   = (f_r - mu) / ||f_r - mu||                    (centred, unit; 0 where not has)
    s_kc  = clip(v_k . v_c, 0, 1)
    w_kc  = 1                 if c = p(k), the other view of the same item (the positive)
            s_kc ** gamma     otherwise, when k != c and both rows are valid and have features
            0                 otherwise (self, invalid rows, rows without features)
    q_kc  = w_kc / sum_c w_kc                            (stop-gradient target distribution)
    u_r   = z_r / ||z_r||,  l_kc = u_k . u_c / tau       (logits over the allowed candidates)
    l_k   = -sum_c q_kc log softmax_c(l_k.) = logsumexp_c l_kc - sum_c q_kc l_kc
    L     = sum_{valid k} l_k / (2 |valid items|)

gamma sharpens the targets: as gamma -> inf every s < 1 goes to 0, q becomes one-hot on the
positive and L is exactly NT-Xent (also gamma = inf itself, since x ** inf = 0 for x < 1).
Why centring: encoder features come out of ReLUs and a mean pool, so their raw cosines are all
close to 1 and even gamma = 4 would spread the target over the whole batch (the positive would
get almost no mass and the loss would reward collapse). Centred on the batch mean, cosines
measure similarity relative to the batch, and clipping at 0 keeps only the truly alike pairs.

Sharding (docs/contracts.md): inside `jax.shard_map` over `axis_name`, embeddings and
features are all-gathered (features after stop_gradient), the batch mean and the valid count
are global sums, only the local anchors are scored, and the loss is psum(local sum) / global
count: the same value on every device, and `jax.grad` outside the shard_map is the
single-device gradient (ntxent.py explains why).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from acl_jax.models.encoder import MASKED
from acl_jax.objectives.collectives import gather, global_sum, pair_indices
from acl_jax.objectives.ntxent import l2_normalize


def soft_targets(
    anchor_feat: jax.Array,
    cand_feat: jax.Array,
    positive_index: jax.Array,
    allowed: jax.Array,
    anchor_has: jax.Array,
    cand_has: jax.Array,
    gamma: float,
) -> jax.Array:
    """Target distributions q (M, K) of the module docstring, rows summing to 1 (or all 0).

    anchor_feat (M, F), cand_feat (K, F): centred unit features (0 rows where not has);
    positive_index (M,) in [0, K); allowed (M, K) bool (self and invalid rows excluded; the
    positive must be allowed); anchor_has (M,), cand_has (K,) bool.
    """
    sim = jnp.clip(anchor_feat @ cand_feat.T, 0.0, 1.0)
    weight = jnp.where(anchor_has[:, None] & cand_has[None, :], sim**gamma, 0.0)
    is_pos = jnp.arange(cand_feat.shape[0])[None, :] == positive_index[:, None]
    weight = jnp.where(allowed, jnp.where(is_pos, 1.0, weight), 0.0)
    total = jnp.sum(weight, axis=1, keepdims=True)
    return jax.lax.stop_gradient(weight / jnp.maximum(total, 1e-30))


def soft_cross_entropy(
    anchors: jax.Array,
    candidates: jax.Array,
    targets: jax.Array,
    allowed: jax.Array,
    temperature: float,
) -> tuple[jax.Array, jax.Array]:
    """anchors (M, P), candidates (K, P) unit vectors; targets (M, K); allowed (M, K) bool ->
    (loss (M,) = -sum_c q log softmax over allowed, argmax (M,) of the allowed logits)."""
    logits = jnp.where(allowed, anchors @ candidates.T / temperature, MASKED)
    lse = jax.nn.logsumexp(logits, axis=1)
    # where, not q * logits: a masked logit times a zero target must not matter at all.
    expected = jnp.sum(jnp.where(allowed, targets * logits, 0.0), axis=1)
    return lse - expected, jnp.argmax(logits, axis=1)


def _centred_unit(f1, f2, has, axis_name):
    """Centres both views' features on their global mean over rows with `has`; unit norm."""
    w = has.astype(jnp.float32)[:, None]
    sums = jnp.concatenate([jnp.sum((f1 + f2) * w, axis=0), 2.0 * jnp.sum(w)[None]])
    sums = global_sum(sums, axis_name)
    mu = sums[:-1] / jnp.maximum(sums[-1], 1.0)
    return l2_normalize(f1 - mu) * w, l2_normalize(f2 - mu) * w


def soft_nt_xent(
    z1: jax.Array,
    z2: jax.Array,
    f1: jax.Array,
    f2: jax.Array,
    valid: jax.Array,
    has_feat: jax.Array,
    temperature: float,
    gamma: float,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Soft-target two-view contrastive loss over the global batch (module docstring).

    z1, z2 (b, P): per-device embeddings of the two views (the gradient flows through them);
    f1, f2 (b, F): similarity features of the same rows (gradient stopped here); valid (b,)
    bool: rows that are anchors and candidates (invalid rows contribute nothing);
    has_feat (b,) bool: rows whose features are meaningful (others get only the positive).
    Returns (loss, {"acc": top-1 rate of the positive, "pos_target": mean q on the positive,
    "count": number of valid items N_valid}), all global over the 2 N_valid valid anchors.
    """
    if z1.ndim != 2 or z1.shape != z2.shape or f1.shape != f2.shape or f1.shape[0] != z1.shape[0]:
        raise ValueError(
            "soft_nt_xent expects z1, z2 (b, P) and f1, f2 (b, F) with the same b, got "
            f"{z1.shape}, {z2.shape}, {f1.shape}, {f2.shape}"
        )
    if valid.shape != z1.shape[:1] or has_feat.shape != z1.shape[:1]:
        raise ValueError(f"valid and has_feat must be (b,) = {z1.shape[:1]}")
    b = z1.shape[0]
    valid = valid.astype(bool)
    has = has_feat.astype(bool) & valid
    f1, f2 = (jax.lax.stop_gradient(f.astype(jnp.float32)) for f in (f1, f2))
    v1, v2 = _centred_unit(f1, f2, has, axis_name)
    u1, u2 = l2_normalize(z1), l2_normalize(z2)

    cand = jnp.concatenate([gather(u1, axis_name), gather(u2, axis_name)])  # (2N, P)
    cand_feat = jnp.concatenate([gather(v1, axis_name), gather(v2, axis_name)])
    cand_valid = jnp.tile(gather(valid, axis_name), 2)
    cand_has = jnp.tile(gather(has, axis_name), 2)
    n = cand.shape[0] // 2
    self_index, positive_index = pair_indices(b, n, axis_name)
    anchor_valid = jnp.tile(valid, 2)
    allowed = (
        (jnp.arange(2 * n)[None, :] != self_index[:, None])
        & cand_valid[None, :]
        & anchor_valid[:, None]
    )
    targets = soft_targets(
        jnp.concatenate([v1, v2]),
        cand_feat,
        positive_index,
        allowed,
        jnp.tile(has, 2),
        cand_has,
        gamma,
    )
    loss, top = soft_cross_entropy(jnp.concatenate([u1, u2]), cand, targets, allowed, temperature)
    pos_q = jnp.take_along_axis(targets, positive_index[:, None], axis=1)[:, 0]
    w = anchor_valid.astype(jnp.float32)
    local = jnp.stack(
        [
            jnp.sum(jnp.where(anchor_valid, loss, 0.0)),
            jnp.sum(w * (top == positive_index)),
            jnp.sum(w * pos_q),
            jnp.sum(w),
        ]
    )
    total = global_sum(local, axis_name)
    denom = jnp.maximum(total[3], 1.0)
    metrics = {"acc": total[1] / denom, "pos_target": total[2] / denom, "count": total[3] / 2}
    return total[0] / denom, metrics
