"""ACL-ECG's physiology-aware views: transforms that keep the cardiac rhythm intact.

Each op takes `(key, view)` plus keyword-only static parameters (closed over by
`acl_jax.augment.compose.make_augment`) and returns a View of the same shapes and dtypes.
Ops that move time move `view.rpeaks` with the signal; peaks pushed out of the window become -1
and the array is re-packed (valid ascending, then -1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from acl_jax.augment.view import View, pack_rpeaks, valid_peaks


def scale_crop(key: jax.Array, view: View, *, min_scale: float) -> View:
    """Crops a random contiguous fraction s ~ U[min_scale, 1] of the window, resizes it to W.

    Output sample j reads the input at p_j = a + j * s (linear interpolation between the two
    neighbouring samples), with the crop start a ~ U[0, (W - 1)(1 - s)], so p spans the crop and
    never leaves [0, W - 1]. The index tensor is one (W,) vector shared by the 12 leads, so
    under vmap this is a cheap (B, W) gather rather than a per-lead one.
    R-peak r maps through the inverse affine map to round((r - a) / s); peaks outside the crop
    become -1.
    x: (12, W) -> (12, W); rpeaks: (K,) -> (K,).
    """
    width = view.x.shape[-1]
    k_scale, k_start = jax.random.split(key)
    s = jax.random.uniform(k_scale, (), jnp.float32, min_scale, 1.0)
    a = jax.random.uniform(k_start, (), jnp.float32) * (width - 1) * (1.0 - s)
    pos = a + jnp.arange(width, dtype=jnp.float32) * s
    # Clamp to W - 2 so i0 + 1 stays in range; frac then reaches 1.0 at the last sample.
    i0 = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, width - 2)
    frac = (pos - i0.astype(jnp.float32))[None, :]
    x0 = jnp.take(view.x, i0, axis=-1)
    x1 = jnp.take(view.x, i0 + 1, axis=-1)
    x = x0 + frac * (x1 - x0)

    mapped = jnp.round((view.rpeaks.astype(jnp.float32) - a) / s).astype(jnp.int32)
    keep = valid_peaks(view.rpeaks) & (mapped >= 0) & (mapped <= width - 1)
    return View(x.astype(view.x.dtype), pack_rpeaks(mapped, keep), view.lead_mask)


def cycle_mask_samples(
    key: jax.Array, rpeaks: jax.Array, width: int, *, prob: float, max_cycles: int
) -> jax.Array:
    """(W,) bool: the samples `cycle_mask` zeroes for this key.

    Cycle k is [rpeaks[k], rpeaks[k+1]) for consecutive valid peaks (K - 1 candidates, a fixed
    number so it jits). Each cycle is picked with probability `prob`; of the picked ones, the
    `max_cycles` with the highest random priority are kept. The partial cycles before the first
    and after the last valid peak are never candidates: their extent is unknown, so masking
    them would not mask a whole beat.
    The mask is built by comparing each sample index to the (K - 1) interval bounds
    ((K - 1) x W booleans, no scatter), which vmaps into one fused elementwise op.
    """
    num = rpeaks.shape[0] - 1
    if num < 1 or max_cycles < 1:
        return jnp.zeros((width,), bool)
    start, end = rpeaks[:-1], rpeaks[1:]
    candidate = (start >= 0) & (end >= 0)
    k_pick, k_prio = jax.random.split(key)
    picked = candidate & (jax.random.uniform(k_pick, (num,)) < prob)
    if max_cycles < num:
        score = jnp.where(picked, jax.random.uniform(k_prio, (num,)), -1.0)
        rank = jnp.argsort(jnp.argsort(-score))  # 0 = highest priority
        picked = picked & (rank < max_cycles)
    t = jnp.arange(width, dtype=jnp.int32)[None, :]
    inside = (start[:, None] <= t) & (t < end[:, None]) & picked[:, None]
    return jnp.any(inside, axis=0)


def cycle_mask(key: jax.Array, view: View, *, prob: float, max_cycles: int) -> View:
    """Zeroes whole cardiac cycles across all leads (see `cycle_mask_samples`, same key).

    R-peaks are kept: the masked beats' boundaries are still where the rhythm puts them.
    x: (12, W) -> (12, W).
    """
    width = view.x.shape[-1]
    mask = cycle_mask_samples(key, view.rpeaks, width, prob=prob, max_cycles=max_cycles)
    x = jnp.where(mask[None, :], jnp.zeros((), view.x.dtype), view.x)
    return View(x, view.rpeaks, view.lead_mask)


def time_shift(key: jax.Array, view: View, *, max_frac: float) -> View:
    """Circularly shifts the window by n ~ U{-m, ..., m} samples, m = floor(max_frac * W).

    Circular rather than zero-filled: every beat keeps its neighbours and every R-R interval
    but one is unchanged, and no flat zero segment is introduced (which would look like a
    pause or a lead-off artefact and would compete with `timeout`). The price is one wrap
    discontinuity at sample n (mod W), where the window's end abuts its start: the R-R
    interval across it is arbitrary. R-peaks move to (r + n) mod W and are re-sorted.
    x: (12, W) -> (12, W); rpeaks: (K,) -> (K,).
    """
    width = view.x.shape[-1]
    m = int(max_frac * width)
    n = jax.random.randint(key, (), -m, m + 1, dtype=jnp.int32)
    src = jnp.mod(jnp.arange(width, dtype=jnp.int32) - n, width)
    x = jnp.take(view.x, src, axis=-1)
    valid = valid_peaks(view.rpeaks)
    moved = jnp.mod(view.rpeaks + n, width)
    return View(x, pack_rpeaks(moved, valid), view.lead_mask)
