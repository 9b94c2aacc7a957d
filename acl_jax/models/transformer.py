"""1-D transformers for ECG: per-lead patch tokens (a backbone) or heartbeat tokens (CLEAR).

Shared parts: multi-head attention taking an explicit boolean mask (B or 1, H or 1, N, N),
True = may attend (masked logits get a large finite negative, so a fully masked row stays
finite); pre-LN blocks x + Attn(LN x), x + MLP(LN x) with a GELU MLP; a final LayerNorm.
Time embeddings are fixed sinusoids of the token's position in SAMPLES at the prepared rate
(a checkpoint is tied to its rate anyway: the eval binary checks it), lead embeddings are
learned (12, D). No BatchNorm anywhere, so features never depend on the batch and 8 devices
compute exactly what 1 does without cross-device statistics.

`PatchTransformer` (registered as backbone "transformer", the ECGEncoder contract): (N, C, T)
is cut per channel into patches of `patch` samples (T zero-padded to a multiple), each
projected linearly to D, plus channel and time embeddings; full attention; mean over tokens ->
(N, D). In ECGEncoder's lead-wise mode C = 1 and the encoder adds its own lead embedding.
From ModelConfig it reads D = widths[-1] and depth = sum(blocks); `patch` (25), `heads` (4)
and `mlp_ratio` (2) are backbone options (ECGEncoder(..., backbone_options={...})).

`BeatTransformer` (CLEAR's encoder): tokens and sparse attention of acl_jax.models.beats;
beat tokens are Linear(L -> D) of the beat samples (or the learned mask token where masked)
plus lead embedding plus the sinusoid of the R-peak sample; one learned summary token per lead
plus its lead embedding. Global feature = mean of the summary tokens over present leads.
Called as encoder(x, lead_mask, rpeaks): it needs the batch's R-peaks (`needs_rpeaks`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.leads import NUM_LEADS, region_matrix
from acl_jax.models import beats as beat_tokens
from acl_jax.models.encoder import MASKED, Features, masked_pool, register_backbone
from acl_jax.models.roles import Encoder


@functools.lru_cache(maxsize=16)
def _regions(spec: str):
    # A constant kept out of the module state (not a parameter).
    return region_matrix(spec)


def sinusoid(pos: jax.Array, dim: int) -> jax.Array:
    """pos (...,) positions -> (..., dim) [sin(pos w_i), cos(pos w_i)], w_i = 1e4^(-2i/dim)."""
    if dim % 2:
        raise ValueError(f"d_model must be even for sinusoidal time embeddings, got {dim}")
    freqs = jnp.exp(-math.log(1e4) * jnp.arange(dim // 2) * 2.0 / dim)
    ang = pos.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)


class Attention(nnx.Module):
    """Multi-head self-attention: x (B, N, D), mask (B|1, H|1, N, N) bool or None -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"d_model {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        b, n, d = x.shape
        q, k, v = jnp.moveaxis(self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads), 2, 0)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // self.heads)
        if mask is not None:
            logits = jnp.where(mask, logits, MASKED)
        weights = jax.nn.softmax(logits, axis=-1)
        return self.out(jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d))


class Block(nnx.Module):
    """Pre-LN transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = Attention(dim, heads, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.fc1 = nnx.Linear(dim, mlp_ratio * dim, rngs=rngs)
        self.fc2 = nnx.Linear(mlp_ratio * dim, dim, rngs=rngs)

    def __call__(self, x, mask=None):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))


class Transformer(nnx.Module):
    """`depth` pre-LN blocks and a final LayerNorm: (B, N, D), mask -> (B, N, D)."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: int, *, rngs: nnx.Rngs):
        if depth < 1:
            raise ValueError(f"transformer depth must be >= 1, got {depth}")
        self.blocks = nnx.List([Block(dim, heads, mlp_ratio, rngs=rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(dim, rngs=rngs)

    def __call__(self, x, mask=None):
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class Decoder(nnx.Module):
    """Light reconstruction decoder: Linear(D -> d) -> Transformer(d) -> Linear(d -> out)."""

    def __init__(self, d_in, dim, depth, heads, mlp_ratio, d_out, *, rngs: nnx.Rngs):
        self.inp = nnx.Linear(d_in, dim, rngs=rngs)
        self.body = Transformer(dim, depth, heads, mlp_ratio, rngs=rngs)
        self.out = nnx.Linear(dim, d_out, rngs=rngs)

    def __call__(self, x, mask=None):
        return self.out(self.body(self.inp(x), mask))


class PatchTransformer(nnx.Module):
    """x (N, C, T) -> (N, dim): per-channel patch tokens, full attention, mean pooling."""

    def __init__(self, in_channels, dim, depth, heads, mlp_ratio, patch, *, rngs: nnx.Rngs):
        if patch < 1:
            raise ValueError(f"patch length must be >= 1 sample, got {patch}")
        self.patch, self.dim = patch, dim
        self.embed = nnx.Linear(patch, dim, rngs=rngs)
        init = jax.nn.initializers.normal(0.02)
        self.channel_embed = nnx.Param(init(rngs.params(), (in_channels, dim), jnp.float32))
        self.body = Transformer(dim, depth, heads, mlp_ratio, rngs=rngs)

    def _tokens(self, x) -> jax.Array:
        """x (N, C, T) -> encoded tokens (N, C, P, D), P = ceil(T / patch)."""
        n, c, t = x.shape
        p = -(-t // self.patch)
        x = jnp.pad(x.astype(jnp.float32), ((0, 0), (0, 0), (0, p * self.patch - t)))
        h = self.embed(x.reshape(n, c, p, self.patch))  # (N, C, P, D)
        h = h + self.channel_embed[...][:, None] + sinusoid(jnp.arange(p) * self.patch, self.dim)
        return self.body(h.reshape(n, c * p, self.dim)).reshape(n, c, p, self.dim)

    def __call__(self, x, mask=None):
        """x (N, C, T); `mask` (the BatchNorm row mask of the contract) is unused: no BatchNorm."""
        del mask
        return self._tokens(x).mean(axis=(1, 2))

    def features_map(self, x, mask=None) -> jax.Array:
        """x (N, C, T) -> (N, P, D): each patch's tokens averaged over the channels, so dense
        tasks (LUDB segmentation) get one feature per 0.25 s patch; its mean over P is
        exactly __call__'s pooled feature. `mask` is unused, as in __call__."""
        del mask
        return self._tokens(x).mean(axis=1)


def _patch_transformer(in_channels, cfg, *, bn_axis, rngs, patch=25, heads=4, mlp_ratio=2):
    del bn_axis  # LayerNorm only
    depth = sum(cfg.blocks)
    return PatchTransformer(in_channels, cfg.widths[-1], depth, heads, mlp_ratio, patch, rngs=rngs)


register_backbone("transformer", _patch_transformer)


class BeatTokens(NamedTuple):
    """Outputs of BeatTransformer.tokens; N = 12 (K + 1) in beats.token_layout order."""

    seq: jax.Array  # (B, N, D) encoder output
    attn_mask: jax.Array  # (B, 1, N, N) bool, the sparse mask used
    beats: jax.Array  # (B, 12, K, D), zeros at invalid tokens
    summary: jax.Array  # (B, 12, D), zeros at absent leads
    valid: jax.Array  # (B, 12, K) bool: lead present and R-peak not -1
    lead_present: jax.Array  # (B, 12) bool
    signal_beats: jax.Array  # (B, 12, K, L) the raw beats (reconstruction targets)


class BeatTransformer(Encoder):
    """CLEAR's heartbeat-token encoder (module docstring); `before`/`after` in samples."""

    needs_rpeaks = True
    beat_tokens = True

    def __init__(self, *, before, after, dim, depth, heads, mlp_ratio, regions, rngs: nnx.Rngs):
        self.before, self.after, self.dim = before, after, dim
        self.region_spec = regions
        self.num_regions = int(_regions(regions).shape[0])
        init = jax.nn.initializers.normal(0.02)
        self.embed = nnx.Linear(before + after, dim, rngs=rngs)
        self.lead_embed = nnx.Param(init(rngs.params(), (NUM_LEADS, dim), jnp.float32))
        self.summary_token = nnx.Param(init(rngs.params(), (dim,), jnp.float32))
        self.mask_token = nnx.Param(init(rngs.params(), (dim,), jnp.float32))
        self.body = Transformer(dim, depth, heads, mlp_ratio, rngs=rngs)

    def tokens(self, x, lead_mask, rpeaks, masked=None) -> BeatTokens:
        """x (B, 12, T) mV, lead_mask (B, 12), rpeaks (B, K) int, masked (B, 12, K) bool|None."""
        if x.ndim != 3 or x.shape[1] != NUM_LEADS or lead_mask.shape != x.shape[:2]:
            raise ValueError(
                f"expected x (B, 12, T) and lead_mask (B, 12), got {x.shape}, {lead_mask.shape}"
            )
        present = lead_mask > 0
        x = jnp.where(present[..., None], x, 0.0).astype(jnp.float32)
        raw, peak_valid = beat_tokens.cut_beats(x, rpeaks, self.before, self.after)
        valid = peak_valid[:, None, :] & present[:, :, None]
        lead = self.lead_embed[...]
        h = self.embed(raw)  # (B, 12, K, D)
        if masked is not None:
            masked = masked & valid
            h = jnp.where(masked[..., None], self.mask_token[...], h)
        h = h + lead[:, None] + sinusoid(jnp.maximum(rpeaks, 0), self.dim)[:, None]
        b, k = x.shape[0], rpeaks.shape[1]
        s = jnp.broadcast_to(self.summary_token[...] + lead, (b, NUM_LEADS, self.dim))
        seq = jnp.concatenate([s[:, :, None], h], axis=2).reshape(b, -1, self.dim)
        attn_mask = beat_tokens.clear_attention_mask(present, valid, masked)
        seq = self.body(seq, attn_mask)
        out = seq.reshape(b, NUM_LEADS, k + 1, self.dim)
        return BeatTokens(
            seq=seq,
            attn_mask=attn_mask,
            beats=jnp.where(valid[..., None], out[:, :, 1:], 0.0),
            summary=jnp.where(present[..., None], out[:, :, 0], 0.0),
            valid=valid,
            lead_present=present,
            signal_beats=raw,
        )

    def __call__(self, x, lead_mask, rpeaks) -> Features:
        """-> Features: global_ (B, D) mean summary over present leads, leads (B, 12, D) the
        summaries, regions (B, R, D) their mean over each region's present leads."""
        t = self.tokens(x, lead_mask, rpeaks)
        mask = t.lead_present.astype(jnp.float32)
        regions, count = masked_pool(
            t.summary, jnp.asarray(_regions(self.region_spec))[None] * mask[:, None, :]
        )
        global_, _ = masked_pool(t.summary, mask[:, None, :])
        return Features(
            global_=global_[:, 0],
            leads=t.summary,
            regions=regions,
            region_mask=(count > 0).astype(jnp.float32),
        )
