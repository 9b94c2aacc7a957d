"""ACL-ECG's inter-region ALIGNMENT term (cfg.acl_ecg.region_objective="inter_alignment").

A multi-positive InfoNCE over region embeddings: for a valid anchor (record i, region r, view v),
the positives are the record's other present regions in the other view and the negatives every
present region of every other record, in both views and on every device. The exact formula is in
the docstring of acl_jax.objectives.acl_ecg; the other ACL-ECG terms are there too.

Sharding: inside `jax.shard_map` over `axis_name`, the (b, R, P) embeddings and (b, R) masks of
both views are all-gathered once; the 2bR local anchors are scored against the 2NR gathered
candidates and the loss is psum(local sum) / psum(local count), the same on every device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from acl_jax.models.encoder import MASKED
from acl_jax.objectives.collectives import gather, global_sum, pair_indices


def inter_alignment_terms(
    u1: jax.Array, u2: jax.Array, valid: jax.Array, temperature: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array]:
    """L_inter of region_objective "inter_alignment" and its top-1 accuracy.

    u1, u2: (b, R, P) unit region embeddings of the two views; valid: (b, R) bool.
    Returns (loss, acc) scalars, global over all devices of `axis_name`.
    """
    b, num_regions, dim = u1.shape
    # Items are (view, record, region) flattened in that order: 2bR local anchors, 2NR candidates.
    anchors = jnp.concatenate([u1, u2]).reshape(-1, dim)
    candidates = jnp.concatenate([gather(u1, axis_name), gather(u2, axis_name)]).reshape(-1, dim)
    all_valid = gather(valid, axis_name)
    n = all_valid.shape[0]
    self_index, _ = pair_indices(b, n, axis_name)  # (2b,) global (view, record) of local rows
    cand_valid = jnp.concatenate([all_valid, all_valid]).reshape(-1)
    anchor_valid = jnp.concatenate([valid, valid]).reshape(-1)

    def labels(view_record: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        # (view, record, region) of each flattened item, from its global (view, record) index.
        vr = jnp.repeat(view_record, num_regions)
        region = jnp.tile(jnp.arange(num_regions), view_record.shape[0])
        return vr // n, vr % n, region

    view_a, rec_a, reg_a = labels(self_index)
    view_c, rec_c, reg_c = labels(jnp.arange(2 * n))
    same_record = rec_a[:, None] == rec_c[None, :]
    positive = (
        same_record
        & (view_a[:, None] != view_c[None, :])
        & (reg_a[:, None] != reg_c[None, :])
        & cand_valid[None, :]
    )
    allowed = positive | (~same_record & cand_valid[None, :])
    logits = jnp.where(allowed, anchors @ candidates.T / temperature, MASKED)
    log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
    num_pos = positive.sum(axis=1).astype(jnp.float32)
    counted = anchor_valid & (num_pos > 0)
    loss = -jnp.sum(jnp.where(positive, log_prob, 0.0), axis=1) / jnp.maximum(num_pos, 1.0)
    top = jnp.argmax(logits, axis=1)
    correct = jnp.take_along_axis(positive, top[:, None], axis=1)[:, 0] & counted
    sums = jnp.stack(
        [
            jnp.where(counted, loss, 0.0).sum(),
            correct.sum(dtype=jnp.float32),
            counted.sum(dtype=jnp.float32),
        ]
    )
    loss_sum, correct_sum, count = global_sum(sums, axis_name)
    # 0/0 -> 0 when no anchor has a positive (e.g. every record has a single region).
    return loss_sum / jnp.maximum(count, 1.0), correct_sum / jnp.maximum(count, 1.0)
