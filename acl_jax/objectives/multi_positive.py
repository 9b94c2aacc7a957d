"""Multi-positive NT-Xent: positives are all items sharing an integer id (e.g. the same patient).

The loss of CLOCS' patient-aware objectives (Kiyasseh et al., ICML 2021) and 3KG (Gopal et al.,
ML4H 2021), written in the NT-Xent form of SimCLR with the "L_out" averaging of supervised
contrastive learning (Khosla et al., NeurIPS 2020). For N examples with two views each and ids
y_i (the patient), embeddings are L2-normalized, giving 2N items a_k with id y(k). With
s(a, c) = a . c / tau, C(k) = {all 2N items} minus {a_k}, and the positives of anchor k
Pos(k) = {c in C(k) : y(c) = y(k)} (always containing the other view of the same example):

    log p(k, c) = s(a_k, a_c) - log sum_{c' in C(k)} exp s(a_k, a_c')
    l_k = -(1 / |Pos(k)|) sum_{c in Pos(k)} log p(k, c)
    L   = (1 / 2N) sum_k l_k

With all ids distinct, Pos(k) is the other view alone and L is exactly NT-Xent
(acl_jax.objectives.ntxent). Two records of one patient in a batch, or the same record drawn
twice, are positives of each other in both views; other patients' items are negatives.
Documented choice: CLOCS' own code scores view-A anchors against view-B candidates only; the
NT-Xent candidate set used here (both views, 2N - 1 candidates) keeps the patient-aware
baselines directly comparable with SimCLR and ACL-ECG, which use the same candidate set.

Sharding (docs/contracts.md): inside `jax.shard_map` over `axis_name` the embeddings AND the
ids are all-gathered, so a patient whose records sit on two devices is matched exactly as on
one device; only the 2b local anchors are scored and the result is psum(local sum) / 2N.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from acl_jax.models.encoder import MASKED
from acl_jax.objectives.collectives import gather, global_sum, pair_indices
from acl_jax.objectives.ntxent import l2_normalize


def _check_inputs(z1: jax.Array, z2: jax.Array, ids: jax.Array) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"multi_positive_nt_xent expects two (b, P) arrays of the same shape, "
            f"got {z1.shape} and {z2.shape}"
        )
    if ids.shape != z1.shape[:1] or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(
            f"ids must be an integer (b,) array matching z1 (b = {z1.shape[0]}), got "
            f"{ids.dtype} {ids.shape}; pass the batch's 'patient' ids (acl_jax.data.pipeline)"
        )


def multi_positive_nt_xent(
    z1: jax.Array,
    z2: jax.Array,
    ids: jax.Array,
    temperature: float,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Multi-positive NT-Xent over the global batch (formula in the module docstring).

    z1, z2: (b, P) per-device projections of the two views; ids: (b,) int, equal for items that
    are positives of each other (b = N on one device). Returns (loss scalar, metrics) with
    metrics "acc" (fraction of anchors whose top-1 candidate is a positive) and
    "positives" (mean |Pos(k)|: 1 when no id repeats), all global means over the 2N anchors.
    """
    _check_inputs(z1, z2, ids)
    b = z1.shape[0]
    u1, u2 = l2_normalize(z1), l2_normalize(z2)
    candidates = jnp.concatenate([gather(u1, axis_name), gather(u2, axis_name)])  # (2N, P)
    all_ids = gather(ids, axis_name)
    candidate_ids = jnp.concatenate([all_ids, all_ids])  # (2N,)
    n = all_ids.shape[0]
    self_index, _ = pair_indices(b, n, axis_name)
    anchors = jnp.concatenate([u1, u2])  # (2b, P)
    anchor_ids = jnp.concatenate([ids, ids])

    allowed = jnp.arange(2 * n)[None, :] != self_index[:, None]  # (2b, 2N)
    positive = allowed & (candidate_ids[None, :] == anchor_ids[:, None])
    logits = jnp.where(allowed, anchors @ candidates.T / temperature, MASKED)
    log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
    # The other view is always a positive, so num_pos >= 1 and no division by zero.
    num_pos = positive.sum(axis=1).astype(jnp.float32)
    loss = -jnp.sum(jnp.where(positive, log_prob, 0.0), axis=1) / num_pos
    top = jnp.argmax(logits, axis=1)
    correct = jnp.take_along_axis(positive, top[:, None], axis=1)[:, 0]

    local = jnp.stack([loss.sum(), correct.sum(dtype=jnp.float32), num_pos.sum()])
    total = global_sum(local, axis_name) / (2 * n)
    return total[0], {"acc": total[1], "positives": total[2]}


class PatientPositives:
    """Mixin for SimCLR-shaped objectives (CMSC, 3KG): every view of the same patient
    (batch["patient"] (b,) int) is a positive, with tau = cfg.loss.temperature."""

    def contrast(self, z1: jax.Array, z2: jax.Array, batch: dict, axis_name: str | None):
        patient = jnp.asarray(batch["patient"], jnp.int32)
        loss, metrics = multi_positive_nt_xent(z1, z2, patient, self._temperature, axis_name)
        return loss, {"loss": loss, **metrics}
