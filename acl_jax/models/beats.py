"""Heartbeat tokens: beats cut at shared R-peaks, their masking, and CLEAR's sparse attention.

Tokenizer (`cut_beats`): for every lead and every stored R-peak r_k of a window (the pipeline's
`rpeaks`, window-relative, -1 padded), the samples x[l, r_k - a : r_k + b] form beat token
(l, k) of length L = a + b; samples outside [0, T) are 0 and -1 peaks give all-zero beats with
validity False. All leads share the R-peaks (one detector fused over the leads, acl_jax.data.qrs),
so token (l, k) and (l', k) are the same cardiac cycle seen from two leads. Pure JAX: one
vectorized gather, jit/vmap safe, no Python loop over beats.

Token layout used by the CLEAR encoder (N = 12 (K + 1) tokens, lead-major):
    index l (K + 1)          summary token of lead l
    index l (K + 1) + 1 + k  beat token (l, k)

Sparse attention (`clear_attention_mask`, True = query may attend to key). A token is VALID
when its lead is present (and, for beats, its R-peak is not -1); a beat is VISIBLE when valid
and not masked. For a query:
    masked beat (l, k): {beat (l', k) : l' != l, valid} U {summary l}   (conduction: the same
                        cycle in the other leads; view: its own lead's summary)
    visible beat (l, k): {summary l} U {beat (l, k') : visible} U {beat (l', k) : l' != l,
                        visible}
    summary l (present): {summary l} U {beat (l, k') : visible}
    invalid token:       {itself} (keeps its softmax finite; its output is discarded)
Mask tokens are never keys of visible beats or summaries, so the visible path (and the summary
tokens that give the downstream feature) is computed as it would be on the unmasked tokens
alone, like MAE's encoder; at downstream time nothing is masked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def beat_window(fs: int, before_s: float, after_s: float) -> tuple[int, int]:
    """(before, after) in samples at rate fs of a beat window [r - before_s, r + after_s)."""
    return round(before_s * fs), max(1, round(after_s * fs))


def cut_beats(x: jax.Array, rpeaks: jax.Array, before: int, after: int):
    """x (B, C, T), rpeaks (B, K) int (-1 = none) -> (beats (B, C, K, L), valid (B, K) bool).

    beats[b, c, k, i] = x[b, c, rpeaks[b, k] - before + i] for 0 <= i < L = before + after,
    0 where that index is outside [0, T) or the peak is -1.
    """
    if x.ndim != 3 or rpeaks.ndim != 2 or rpeaks.shape[0] != x.shape[0]:
        raise ValueError(
            f"cut_beats expects x (B, C, T) and rpeaks (B, K), got {x.shape}, {rpeaks.shape}"
        )
    if before < 0 or after < 1:
        raise ValueError(
            f"beat window needs before >= 0 and after >= 1 samples, got {before}, {after}"
        )
    b, c, t = x.shape
    k = rpeaks.shape[1]
    valid = rpeaks >= 0
    idx = rpeaks[:, :, None] + jnp.arange(-before, after)[None, None, :]  # (B, K, L)
    inside = valid[:, :, None] & (idx >= 0) & (idx < t)
    flat = jnp.clip(idx, 0, t - 1).reshape(b, 1, -1)
    gathered = jnp.take_along_axis(x, jnp.broadcast_to(flat, (b, c, flat.shape[-1])), axis=2)
    beats = gathered.reshape(b, c, k, before + after)
    return jnp.where(inside[:, None], beats, 0.0), valid


def sample_beat_mask(key: jax.Array, valid: jax.Array, ratio: float) -> jax.Array:
    """One example: valid (C, K) bool -> masked (C, K) bool, exactly floor(ratio * n + 0.5) of
    the n valid tokens chosen uniformly at random (never an invalid one)."""
    n_valid = jnp.sum(valid)
    n_mask = jnp.floor(ratio * n_valid + 0.5).astype(jnp.int32)
    scores = jnp.where(valid, jax.random.uniform(key, valid.shape), 2.0).reshape(-1)
    rank = jnp.argsort(jnp.argsort(scores))
    return (rank < n_mask).reshape(valid.shape) & valid


def token_layout(num_leads: int, num_beats: int):
    """Per-token (lead (N,), beat (N,) with -1 for summaries) in the lead-major layout."""
    per = num_beats + 1
    lead = jnp.repeat(jnp.arange(num_leads), per)
    beat = jnp.tile(jnp.arange(-1, num_beats), num_leads)
    return lead, beat


def clear_attention_mask(
    lead_present: jax.Array, beat_valid: jax.Array, masked: jax.Array | None = None
) -> jax.Array:
    """lead_present (B, C) bool, beat_valid (B, C, K) bool, masked (B, C, K) bool or None ->
    (B, 1, N, N) bool attention mask (broadcast over heads), rules in the module docstring."""
    b, c, k = beat_valid.shape
    if masked is None:
        masked = jnp.zeros_like(beat_valid)
    lead, beat = token_layout(c, k)
    is_sum = beat < 0
    # Token state (B, N): summaries are valid when their lead is present and never masked.
    valid = jnp.concatenate([lead_present[:, :, None], beat_valid & lead_present[:, :, None]], 2)
    hidden = jnp.concatenate([jnp.zeros((b, c, 1), bool), masked], 2)
    valid, hidden = valid.reshape(b, -1), (hidden.reshape(b, -1) & valid.reshape(b, -1))
    visible = valid & ~hidden

    same_lead = lead[:, None] == lead[None, :]
    same_beat = (beat[:, None] == beat[None, :]) & ~is_sum[:, None]
    own_summary = same_lead & is_sum[None, :]  # (N, N): key is the query's lead summary
    lead_beats = same_lead & ~is_sum[None, :]
    cross_beat = same_beat & ~same_lead

    q_sum = is_sum[None, :, None]
    q_masked = hidden[:, :, None]
    key_valid, key_visible = valid[:, None, :], visible[:, None, :]
    for_summary = (jnp.eye(lead.shape[0], dtype=bool) | (lead_beats & key_visible)) & q_sum
    for_masked = (own_summary | (cross_beat & key_valid)) & q_masked
    for_visible = (own_summary | ((lead_beats | cross_beat) & key_visible)) & ~q_sum & ~q_masked
    allowed = (for_summary | for_masked | for_visible) & valid[:, :, None]
    # Invalid queries attend to themselves only, so no softmax row is empty.
    allowed = allowed | (jnp.eye(lead.shape[0], dtype=bool) & ~valid[:, :, None])
    return allowed[:, None]
