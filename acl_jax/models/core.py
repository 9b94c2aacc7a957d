"""CoRe-ECG's encoder and guided decoder (acl_jax.objectives.core_ecg has the method).

`CoreEncoder` is the part a core_ecg checkpoint's evaluation restores: the "transformer"
backbone (PatchTransformer) run over (12, P) patch tokens with a boolean key mask, so masked
tokens are dropped from attention (MAE semantics) rather than replaced. `CoreDecoder` predicts
every patch from the visible tokens, a learned mask token, decoder lead embeddings and the
stop-gradient global feature of the other view.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import CoreEcgConfig, ModelConfig
from acl_jax.leads import NUM_LEADS
from acl_jax.models.encoder import BACKBONES, Features
from acl_jax.models.roles import Encoder
from acl_jax.models.transformer import Decoder, sinusoid


def masked_mean(h: jax.Array, weights: jax.Array) -> jax.Array:
    """h (B, ..., D), weights (B, ...) 0/1 -> (B, D) mean over weighted positions (0 if none)."""
    w = weights.reshape(weights.shape[0], -1).astype(jnp.float32)
    total = jnp.einsum("bn,bnd->bd", w, h.reshape(w.shape + h.shape[-1:]))
    return total / jnp.maximum(w.sum(axis=1), 1.0)[:, None]


class CoreEncoder(Encoder):
    """x (B, 12, T) mV, lead_mask (B, 12) -> Features(global_ (B, D), leads (B, 12, D))."""

    def __init__(self, model: ModelConfig, core: CoreEcgConfig, *, rngs: nnx.Rngs):
        if model.arch != "transformer":
            raise ValueError(
                f"objective 'core_ecg' runs on the transformer backbone, got model.arch="
                f"{model.arch!r}: set --config.model.arch=transformer"
            )
        self.backbone = BACKBONES["transformer"](
            NUM_LEADS,
            model,
            bn_axis=None,
            rngs=rngs,
            patch=core.patch,
            heads=core.heads,
            mlp_ratio=core.mlp_ratio,
        )
        self.dim, self.patch = self.backbone.dim, core.patch

    @property
    def dense(self) -> bool:
        return True

    def num_patches(self, t: int) -> int:
        return -(-t // self.patch)

    def patches(self, x: jax.Array, lead_mask: jax.Array) -> jax.Array:
        """x (B, 12, T) -> (B, 12, P, patch) float32, absent leads zero, T zero-padded."""
        b, c, t = x.shape
        if c != NUM_LEADS or lead_mask.shape != (b, c):
            raise ValueError(f"expected x (B, 12, T) and lead_mask (B, 12), got {x.shape}")
        x = jnp.where(lead_mask[..., None] > 0, x, 0.0).astype(jnp.float32)
        p = self.num_patches(t)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, p * self.patch - t)))
        return x.reshape(b, c, p, self.patch)

    def tokens(self, x, lead_mask, masked=None) -> tuple[jax.Array, jax.Array]:
        """-> (h (B, 12, P, D), visible (B, 12, P) bool); `masked` (B, 12, P) bool or None."""
        bb = self.backbone
        patches = self.patches(x, lead_mask)
        b, _, p, _ = patches.shape
        h = bb.embed(patches) + bb.channel_embed[...][:, None]
        h = h + sinusoid(jnp.arange(p) * self.patch, self.dim)
        visible = jnp.broadcast_to((lead_mask > 0)[:, :, None], (b, NUM_LEADS, p))
        if masked is not None:
            visible = visible & ~masked
        h = bb.body(h.reshape(b, -1, self.dim), visible.reshape(b, 1, 1, -1))
        return h.reshape(b, NUM_LEADS, p, self.dim), visible

    def features_map(self, x, lead_mask) -> jax.Array:
        """Per-patch features for dense tasks (LUDB segmentation): (B, 12, T) -> (B, P, D),
        each patch's tokens averaged over the present leads (absent leads are not attended to,
        as in __call__); its mean over P is __call__'s global_."""
        h, visible = self.tokens(x, lead_mask)
        w = visible.astype(jnp.float32)
        return jnp.einsum("blp,blpd->bpd", w, h) / jnp.maximum(w.sum(1), 1.0)[..., None]

    def __call__(self, x, lead_mask) -> Features:
        h, visible = self.tokens(x, lead_mask)
        w = visible.astype(jnp.float32)
        leads = jnp.einsum("blp,blpd->bld", w, h) / jnp.maximum(w.sum(-1), 1.0)[..., None]
        return Features(global_=masked_mean(h, visible), leads=leads)


class CoreDecoder(nnx.Module):
    """(h (B, 12, P, D), visible (B, 12, P), present (B, 12), guide (B, D)) -> (B, 12, P, patch)."""

    def __init__(self, dim: int, core: CoreEcgConfig, *, rngs: nnx.Rngs):
        init = jax.nn.initializers.normal(0.02)
        self.mask_token = nnx.Param(init(rngs.params(), (dim,), jnp.float32))
        self.lead_embed = nnx.Param(init(rngs.params(), (NUM_LEADS, dim), jnp.float32))
        self.guide = nnx.Linear(dim, dim, rngs=rngs)
        c = core
        self.body = Decoder(
            dim, c.decoder_dim, c.decoder_depth, c.heads, c.mlp_ratio, c.patch, rngs=rngs
        )
        self.patch = core.patch

    def __call__(self, h, visible, present, guide):
        b, c, p, d = h.shape
        e = jnp.where(visible[..., None], h, self.mask_token[...])
        e = e + self.lead_embed[...][:, None] + sinusoid(jnp.arange(p) * self.patch, d)
        e = e + self.guide(guide)[:, None, None]
        keys = jnp.broadcast_to(present[:, :, None], (b, c, p)).reshape(b, 1, 1, -1)
        return self.body(e.reshape(b, c * p, d), keys).reshape(b, c, p, -1)
