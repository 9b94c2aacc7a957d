"""Beat-SSL (Rizqyawan et al., ISBI 2026, arXiv 2601.16147): rhythm- and heartbeat-level
contrast with soft targets, on 3KG-style vectorcardiogram views.

Views: two augmentations of each window from cfg.augment.ops, which must include
"vcg_rotate_scale" (3KG: rotate and scale the heart axis in VCG space) and may not include ops
that move time (scale_crop, time_shift): the two views then share their R-peaks, so beat k of
view 1 and beat k of view 2 are the same cardiac cycle. Default ops (configs/beat_ssl_ptbxl.py):
("vcg_rotate_scale", "gaussian_noise").

Beats: at the stored R-peaks r_k (batch["rpeaks"]), a = round(beat_before_s fs) and
b = round(beat_after_s fs) samples, beat (n, k) = x_n[:, r_k - a : r_k + b] (12, L = a + b),
cut from each view with acl_jax.models.beats.cut_beats. A beat is VALID when r_k - a >= 0,
r_k + b <= W (wholly inside the window: a beat padded with zeros is a different waveform in
each position) and the record has a lead; the first `beats_per_window` valid beats of a
window are used (the rest of K is padding at 2-3 beats per 2.5 s window, and every beat
costs a window-sized encoder pass).

Encoders (one network): with E the shared ECGEncoder (global feature, dim D),
    g^v_n = E(view_v(x_n))                     (D,) rhythm feature of the whole window
    h^v_nk = E(beat (n, k) of view v)          (D,) the SAME encoder on the beat as a short
                                               (12, L) signal: the ResNet's SAME-padded
                                               strides give >= 1 time step for any L >= 1
                                               (L = 70 at 100 Hz), so no padding is needed
    z^v_n = rhythm_head(g^v_n),  y^v_nk = beat_head(h^v_nk)       (separate MLP heads)
    m^v_n = mean of h^v_nk over the valid beats k          (the record's mean beat feature)
Invalid beats are absent leads for E (excluded from every BatchNorm statistic, feature 0).
The beat passes normalize with the beats' own batch statistics, but E's running averages are
restored after them, so the statistics used downstream are those of whole windows only.

Loss (acl_jax.objectives.soft_contrast.soft_nt_xent, formula there; tau = cfg.loss.temperature,
gamma = beat_ssl.gamma):
    L_rhythm = soft_nt_xent(z^1, z^2, f = m^1, m^2 (stop-grad); all records valid; records
               without a valid beat have no features and get a one-hot target)
    L_beat   = soft_nt_xent(y^1, y^2, f = h^1, h^2 (stop-grad), over the valid beats (n, k)
               of the global batch: positive = the same beat in the other view)
    L        = w_rhythm L_rhythm + w_beat L_beat
Soft targets: s = clip(cos(centred f_i, centred f_j), 0, 1), w = s^gamma, the positive gets
weight 1, normalized per anchor: records (beats) with similar beats are not pushed apart as
hard negatives, which matters most at the beat level, where the other beats of the same record
are near copies of the anchor.

Open details, our choices: similarity from the encoder's beat features (not a hand-made
descriptor, not the projections, whose use would chase its own targets), centred on the batch
mean (soft_contrast.py explains why); gamma 4; beat window 0.25 s before / 0.45 s after R (P
onset to T end at normal rates, as CLEAR); 4 beats per window; w_rhythm = w_beat = 1; one
temperature for both levels. Downstream feature: E's global feature of the window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import MLPHead
from acl_jax.models.beats import beat_window, cut_beats
from acl_jax.objectives.soft_contrast import soft_nt_xent
from acl_jax.objectives.two_view import TwoViewObjective

REQUIRED_OP = "vcg_rotate_scale"
TIME_MOVING_OPS = ("scale_crop", "time_shift")


def select_beats(rpeaks: jax.Array, width: int, before: int, after: int, count: int):
    """rpeaks (b, K) (-1 padded) -> (peaks (b, n), valid (b, n) bool), n = min(K, count): the
    first `count` peaks whose beat [r - before, r + after) lies inside [0, width); -1 after."""
    inside = (rpeaks >= 0) & (rpeaks - before >= 0) & (rpeaks + after <= width)
    # A stable sort on "not inside" moves the usable peaks first and keeps their time order.
    order = jnp.argsort(~inside, axis=1, stable=True)[:, : min(rpeaks.shape[1], count)]
    valid = jnp.take_along_axis(inside, order, axis=1)
    return jnp.where(valid, jnp.take_along_axis(rpeaks, order, axis=1), -1), valid


def masked_mean(h: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """h (b, n, D), valid (b, n) -> (mean over valid (b, D), any valid (b,))."""
    w = valid.astype(jnp.float32)
    total = jnp.einsum("bn,bnd->bd", w, h)
    count = jnp.sum(w, axis=1)
    return total / jnp.maximum(count, 1.0)[:, None], count > 0


class BeatSsl(TwoViewObjective):
    """Beat-SSL pretrainer: shared ECGEncoder, rhythm and beat heads, soft-target contrast."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        c = cfg.beat_ssl
        ops = cfg.augment.ops
        moving = [op for op in ops if op in TIME_MOVING_OPS]
        if REQUIRED_OP not in ops or moving:
            raise ValueError(
                f"objective 'beat_ssl' needs {REQUIRED_OP!r} in augment.ops and no op that "
                f"moves time {TIME_MOVING_OPS} (the views must share R-peaks); got {ops}: set "
                "--config.augment.ops=vcg_rotate_scale,gaussian_noise (configs/beat_ssl_ptbxl.py)"
            )
        self.before, self.after = beat_window(fs, c.beat_before_s, c.beat_after_s)
        if self.before + self.after > cfg.data.window:
            raise ValueError(
                f"a beat of {self.before + self.after} samples (beat_ssl.beat_before_s + "
                f"beat_after_s at {fs} Hz) does not fit in data.window={cfg.data.window}: "
                "raise --config.data.window"
            )
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        d = self.encoder.dim
        self.rhythm_head = MLPHead(d, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self.beat_head = MLPHead(d, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self.beats_per_window = c.beats_per_window
        self.gamma, self.w_rhythm, self.w_beat = c.gamma, c.w_rhythm, c.w_beat
        self.temperature = cfg.loss.temperature

    def encode_beats(self, x, lead_mask, peaks, valid) -> jax.Array:
        """x (b, 12, W), lead_mask (b, 12), peaks/valid (b, n) -> beat features (b, n, D)."""
        beats, _ = cut_beats(x, peaks, self.before, self.after)  # (b, 12, n, L)
        b, c, n, length = beats.shape
        beats = jnp.swapaxes(beats, 1, 2).reshape(b * n, c, length)
        mask = (lead_mask[:, None, :] * valid[:, :, None]).reshape(b * n, c)
        # Window statistics only in the running averages (module docstring): snapshot, restore.
        saved = jax.tree.map(lambda v: v, nnx.state(self.encoder, nnx.BatchStat))
        if self.encoder.lead_wise:
            h = self.encoder(beats, mask).global_
        else:
            # The plain encoder has no BatchNorm row mask; call its backbone with one so that
            # invalid (all-zero) beats stay out of the statistics.
            present = mask > 0
            h = self.encoder.backbone(jnp.where(present[..., None], beats, 0.0), valid.reshape(-1))
        nnx.update(self.encoder, saved)
        return h.reshape(b, n, -1)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        if "rpeaks" not in batch:
            raise ValueError("objective 'beat_ssl' needs batch['rpeaks'] (acl_jax.data.pipeline)")
        v1, v2 = self.views(batch, keys)
        width = v1.x.shape[-1]
        peaks, valid = select_beats(
            jnp.asarray(batch["rpeaks"], jnp.int32),
            width,
            self.before,
            self.after,
            self.beats_per_window,
        )
        valid = valid & (jnp.sum(batch["lead_mask"], axis=1) > 0)[:, None]
        z1, z2 = self.project(self.rhythm_head, v1), self.project(self.rhythm_head, v2)
        h1 = self.encode_beats(v1.x, v1.lead_mask, peaks, valid)
        h2 = self.encode_beats(v2.x, v2.lead_mask, peaks, valid)
        flat_valid = valid.reshape(-1)
        d = h1.shape[-1]
        y1 = self.beat_head(h1.reshape(-1, d), flat_valid)
        y2 = self.beat_head(h2.reshape(-1, d), flat_valid)
        m1, has = masked_mean(h1, valid)
        m2, _ = masked_mean(h2, valid)
        every = jnp.ones(has.shape, bool)
        args = (self.temperature, self.gamma, axis_name)
        loss_r, met_r = soft_nt_xent(z1, z2, m1, m2, every, has, *args)
        loss_b, met_b = soft_nt_xent(
            y1, y2, h1.reshape(-1, d), h2.reshape(-1, d), flat_valid, flat_valid, *args
        )
        loss = self.w_rhythm * loss_r + self.w_beat * loss_b
        metrics = {
            "loss_rhythm": loss_r,
            "loss_beat": loss_b,
            "acc_rhythm": met_r["acc"],
            "acc_beat": met_b["acc"],
            "pos_target_rhythm": met_r["pos_target"],
            "pos_target_beat": met_b["pos_target"],
            "beats": met_b["count"],
        }
        return loss, metrics
