"""NT-Xent (SimCLR, Chen et al. 2020), the masked InfoNCE core it shares with ACL-ECG, and the
L2 normalization every embedding loss uses.

For N examples with two views each, embeddings are L2-normalized, u = z / ||z||, giving 2N
anchors a_k. With s(a, c) = a . c / tau, the positive p(k) of anchor k the other view of the same
example and C(k) = {all 2N embeddings} minus {a_k}:

    l_k = -s(a_k, a_p(k)) + log sum_{c in C(k)} exp s(a_k, c)
    L   = (1 / 2N) sum_k l_k

Sharding (docs/contracts.md; helpers in acl_jax.objectives.collectives): called inside
`jax.shard_map` over `axis_name`, each device holds b = N / n_devices examples. Candidates are
the all-gathered embeddings of every device (global index: view 1 at [0, N), view 2 at [N, 2N),
example j of device d at d * b + j); only the 2b local anchors are scored, and the result is
psum(local sum) / 2N, the same on every device. `jax.grad` taken outside the shard_map then
equals the single-device gradient, because the transpose of `all_gather` (a psum_scatter)
returns each device's share of the candidate gradient to the device that owns those embeddings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from acl_jax.models.encoder import MASKED
from acl_jax.objectives.collectives import gather, global_sum, pair_indices

# Squared-norm floor for L2 normalization: a zero embedding (e.g. a region whose leads are all
# dropped) normalizes to 0 with a finite gradient instead of 0/0.
_EPS_SQ = 1e-24


def l2_normalize(x: jax.Array) -> jax.Array:
    """Unit vectors along the last axis, computed in float32. x: (..., P) -> (..., P)."""
    x = x.astype(jnp.float32)
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * lax.rsqrt(jnp.maximum(sq, _EPS_SQ))


def info_nce(
    anchors: jax.Array,
    candidates: jax.Array,
    positive_index: jax.Array,
    mask: jax.Array,
    temperature: float,
) -> tuple[jax.Array, jax.Array]:
    """Per-anchor InfoNCE over unit vectors with a candidate mask.

    anchors (M, P) and candidates (K, P), already L2-normalized; positive_index (M,) int in
    [0, K); mask (M, K) bool, True where candidate k may appear in anchor m's denominator (the
    caller excludes the anchor itself and invalid candidates; the positive must be allowed).
    Returns (loss (M,) float32, correct (M,) bool): loss = logsumexp over allowed logits minus
    the positive logit; correct = the positive has the largest allowed logit (top-1 accuracy).
    """
    logits = anchors @ candidates.T / temperature
    logits = jnp.where(mask, logits, MASKED)
    pos = jnp.take_along_axis(logits, positive_index[:, None], axis=1)[:, 0]
    loss = jax.nn.logsumexp(logits, axis=1) - pos
    correct = jnp.argmax(logits, axis=1) == positive_index
    return loss, correct


def _check_pair(z1: jax.Array, z2: jax.Array) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"nt_xent expects two (b, P) arrays of the same shape, got {z1.shape} and {z2.shape}"
        )


def nt_xent_with_metrics(
    z1: jax.Array, z2: jax.Array, temperature: float, axis_name: str | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """NT-Xent loss and top-1 contrastive accuracy over the global batch.

    z1, z2: (b, P) per-device projections of the two views (b = N on one device).
    Returns (loss scalar, {"acc": scalar}), both global means over the 2N anchors.
    """
    _check_pair(z1, z2)
    b = z1.shape[0]
    u1, u2 = l2_normalize(z1), l2_normalize(z2)
    candidates = jnp.concatenate([gather(u1, axis_name), gather(u2, axis_name)])  # (2N, P)
    n = candidates.shape[0] // 2
    self_index, positive_index = pair_indices(b, n, axis_name)
    mask = jnp.arange(2 * n)[None, :] != self_index[:, None]
    loss, correct = info_nce(
        jnp.concatenate([u1, u2]), candidates, positive_index, mask, temperature
    )
    total = global_sum(jnp.stack([loss.sum(), correct.sum(dtype=jnp.float32)]), axis_name)
    return total[0] / (2 * n), {"acc": total[1] / (2 * n)}


def nt_xent(
    z1: jax.Array, z2: jax.Array, temperature: float, axis_name: str | None = None
) -> jax.Array:
    """NT-Xent loss (scalar, global mean over 2N anchors). z1, z2: (b, P) per device."""
    return nt_xent_with_metrics(z1, z2, temperature, axis_name)[0]
