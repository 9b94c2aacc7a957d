"""CLEAR (Conduction-LEAd Reconstructor), the pretraining stage of CLEAR-HUG (arXiv 2512.24002).

Each lead of a window is cut into heartbeat tokens at the shared R-peaks (batch["rpeaks"]):
token (l, k) holds x[l, r_k - a : r_k + b] (zeros outside the window), with a, b =
round(beat_before_s fs), round(beat_after_s fs) samples; one summary token per lead is added.
A fraction `mask_ratio` of each example's valid beat tokens (floor(ratio n + 0.5) of its n
valid tokens, drawn with the example's own key, so the draw does not depend on the device
count) is replaced by a learned mask token. The transformer (acl_jax.models.transformer.
BeatTransformer) runs with the sparse mask of acl_jax.models.beats: a masked beat b_l^k attends
only to the same beat k in the other leads (conduction view, B^k) and to its own lead's summary
token (lead view, c_l), so the reconstruction is b^_l^k = f(B^k, c_l) as in the paper. A light
decoder (Linear, `decoder_depth` blocks under the same mask, Linear to L samples) predicts the
beat samples.

Loss, over the GLOBAL batch (M = the set of masked valid tokens over all devices):
    t_{l,k} = beat (l, k) samples, or (beat - mean) / sqrt(var + 1e-6) over its L samples when
              `norm_target` (MAE's per-patch target normalization; off by default because beat
              amplitude is diagnostic, e.g. voltage criteria, ST elevation)
    L = (1 / |M|) sum_{(n,l,k) in M} (1 / L) sum_i (pred_{n,l,k,i} - t_{n,l,k,i})^2
computed as psum(local sum) / max(psum(local count), 1): identical on every device, so the
gradient taken outside shard_map is the single-device one.

Open details, our choices: beat window 0.25 s before / 0.45 s after R (P onset to T end at
normal rates); samples outside the window are 0 in both input and target; mask tokens are in
the encoder input (the sparse mask routes them), not dropped as in MAE; per-token (not
per-beat) masking, so the model must recover a beat of one lead from the same cycle in the
others; no augmentation (the mask is the corruption). The downstream feature is the mean of
the lead summary tokens over present leads (BeatTransformer.__call__).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.leads import NUM_LEADS
from acl_jax.models.beats import beat_window, sample_beat_mask
from acl_jax.models.roles import Trainable
from acl_jax.models.transformer import BeatTransformer, Decoder
from acl_jax.objectives.collectives import global_sum


def build_encoder(cfg: Config, *, fs: int, rngs: nnx.Rngs) -> BeatTransformer:
    """The CLEAR encoder for `cfg` at rate `fs` (the part downstream evaluation restores)."""
    c = cfg.clear
    before, after = beat_window(fs, c.beat_before_s, c.beat_after_s)
    return BeatTransformer(
        before=before,
        after=after,
        dim=c.d_model,
        depth=c.depth,
        heads=c.heads,
        mlp_ratio=c.mlp_ratio,
        regions=cfg.model.regions,
        rngs=rngs,
    )


def reconstruction_loss(
    pred: jax.Array,
    target: jax.Array,
    masked: jax.Array,
    norm_target: bool,
    axis_name: str | None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """pred, target (b, 12, K, L), masked (b, 12, K) bool -> (global mean MSE over masked
    tokens, {"loss_recon", "num_masked"}); see the module docstring."""
    target = target.astype(jnp.float32)
    if norm_target:
        mean = target.mean(axis=-1, keepdims=True)
        var = target.var(axis=-1, keepdims=True)
        target = (target - mean) / jnp.sqrt(var + 1e-6)
    per_token = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
    sums = jnp.stack([jnp.sum(jnp.where(masked, per_token, 0.0)), jnp.sum(masked, dtype=float)])
    total, count = global_sum(sums, axis_name)
    loss = total / jnp.maximum(count, 1.0)
    return loss, {"loss_recon": loss, "num_masked": count}


class Clear(Trainable):
    """CLEAR pretrainer: BeatTransformer encoder + light decoder, masked-beat reconstruction."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        del bn_axis  # LayerNorm only: nothing to synchronize across devices
        c = cfg.clear
        self.encoder = build_encoder(cfg, fs=fs, rngs=rngs)
        before, after = beat_window(fs, c.beat_before_s, c.beat_after_s)
        self.decoder = Decoder(
            c.d_model,
            c.decoder_dim,
            c.decoder_depth,
            c.heads,
            c.mlp_ratio,
            before + after,
            rngs=rngs,
        )
        self.mask_ratio = c.mask_ratio
        self.norm_target = c.norm_target

    def sample_mask(self, batch: dict, keys: jax.Array) -> jax.Array:
        """keys (b,) -> masked (b, 12, K) bool, per example (sample_beat_mask)."""
        valid = (batch["rpeaks"] >= 0)[:, None, :] & (batch["lead_mask"] > 0)[:, :, None]
        return jax.vmap(sample_beat_mask, in_axes=(0, 0, None))(keys, valid, self.mask_ratio)

    def reconstruct(self, batch: dict, masked: jax.Array):
        """-> (pred (b, 12, K, L), target (b, 12, K, L), masked & valid (b, 12, K))."""
        t = self.encoder.tokens(batch["signal"], batch["lead_mask"], batch["rpeaks"], masked)
        out = self.decoder(t.seq, t.attn_mask)
        b, k = t.valid.shape[0], t.valid.shape[2]
        pred = out.reshape(b, NUM_LEADS, k + 1, -1)[:, :, 1:]
        return pred, t.signal_beats, masked & t.valid

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        if "rpeaks" not in batch:
            raise ValueError("objective 'clear' needs batch['rpeaks'] (acl_jax.data.pipeline)")
        masked = self.sample_mask(batch, keys)
        pred, target, masked = self.reconstruct(batch, masked)
        loss, metrics = reconstruction_loss(pred, target, masked, self.norm_target, axis_name)
        return loss, metrics
