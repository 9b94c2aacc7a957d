"""The usual ECG augmentation library: noise, gain, baseline wander, powerline, dropout, timeout.

Each op is `op(key, view, *, static params) -> View` with shapes and dtypes kept. Additive
noise is multiplied by `view.lead_mask`, so absent leads (mask 0) stay exactly zero. None of
these ops move time, so `view.rpeaks` passes through.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from acl_jax.augment.view import View


def _add(view: View, noise: jax.Array) -> View:
    """Adds (12, W) or (W,) noise to present leads only."""
    noise = jnp.broadcast_to(noise, view.x.shape) * view.lead_mask[:, None]
    return View((view.x + noise).astype(view.x.dtype), view.rpeaks, view.lead_mask)


def gaussian_noise(key: jax.Array, view: View, *, std: float) -> View:
    """Adds i.i.d. N(0, std^2) mV noise to every sample of every present lead."""
    return _add(view, std * jax.random.normal(key, view.x.shape, view.x.dtype))


def amplitude_scale(key: jax.Array, view: View, *, low: float, high: float) -> View:
    """Multiplies the whole view by one factor, log-uniform in [low, high].

    Log-uniform so that halving and doubling are equally likely (gain is a ratio).
    """
    log_f = jax.random.uniform(key, (), jnp.float32, math.log(low), math.log(high))
    return View((view.x * jnp.exp(log_f)).astype(view.x.dtype), view.rpeaks, view.lead_mask)


def baseline_wander(key: jax.Array, view: View, *, fs: int, amp: float, freq_max: float) -> View:
    """Adds a sum of 1-3 low-frequency sinusoids (respiration, electrode motion).

    Component i: amplitude U[0, amp] / n (n ~ U{1, 2, 3} active components, so the sum stays
    within amp), frequency U[0, freq_max] Hz, phase U[0, 2 pi). The waveform is shared by the
    leads with a per-lead gain U[0.5, 1], since wander is one physical cause seen through
    differently placed electrodes; |added| <= amp everywhere.
    """
    k_n, k_amp, k_freq, k_phase, k_gain = jax.random.split(key, 5)
    n = jax.random.randint(k_n, (), 1, 4)
    active = (jnp.arange(3) < n).astype(jnp.float32)
    amps = jax.random.uniform(k_amp, (3,), jnp.float32, 0.0, amp) * active / n
    freqs = jax.random.uniform(k_freq, (3,), jnp.float32, 0.0, freq_max)
    phases = jax.random.uniform(k_phase, (3,), jnp.float32, 0.0, 2 * math.pi)
    t = jnp.arange(view.x.shape[-1], dtype=jnp.float32) / fs
    wave = jnp.sum(amps[:, None] * jnp.sin(2 * math.pi * freqs[:, None] * t + phases[:, None]), 0)
    gain = jax.random.uniform(k_gain, (12, 1), jnp.float32, 0.5, 1.0)
    return _add(view, gain * wave[None, :])


def powerline(key: jax.Array, view: View, *, fs: int, amp: float, freq: float) -> View:
    """Adds mains interference: amplitude U[0, amp] mV at `freq` Hz, random phase, all leads.

    At fs = 2 * freq (e.g. 50 Hz at 100 Hz) the sinusoid is sampled at Nyquist and becomes an
    alternating +-amp*sin(phase) pattern, which is what such a recording would show.
    """
    k_amp, k_phase = jax.random.split(key)
    a = jax.random.uniform(k_amp, (), jnp.float32, 0.0, amp)
    phase = jax.random.uniform(k_phase, (), jnp.float32, 0.0, 2 * math.pi)
    t = jnp.arange(view.x.shape[-1], dtype=jnp.float32) / fs
    return _add(view, a * jnp.sin(2 * math.pi * freq * t + phase))


def lead_dropout(key: jax.Array, view: View, *, prob: float) -> View:
    """Zeroes each present lead with probability `prob`, never all present leads.

    When every present lead would be dropped, the one with the highest random priority is
    kept (a view with no signal would be a useless positive). `lead_mask` is updated so the
    encoder's lead pooling ignores dropped leads. A view with no present lead is unchanged.
    """
    k_drop, k_keep = jax.random.split(key)
    present = view.lead_mask > 0
    drop = present & (jax.random.uniform(k_drop, (12,)) < prob)
    all_dropped = jnp.any(present) & ~jnp.any(present & ~drop)
    keep = jnp.argmax(jnp.where(present, jax.random.uniform(k_keep, (12,)), -1.0))
    drop = drop & ~(all_dropped & (jnp.arange(12) == keep))
    mask = jnp.where(drop, 0.0, view.lead_mask).astype(view.lead_mask.dtype)
    return View(view.x * mask[:, None], view.rpeaks, mask)


def timeout(key: jax.Array, view: View, *, max_frac: float) -> View:
    """Zeroes one contiguous segment of L ~ U{0, ..., floor(max_frac * W)} samples, all leads.

    The segment start is U{0, ..., W - L}, so the segment always lies inside the window.
    """
    width = view.x.shape[-1]
    k_len, k_start = jax.random.split(key)
    length = jax.random.randint(k_len, (), 0, int(max_frac * width) + 1)
    start = jnp.floor(jax.random.uniform(k_start, ()) * (width - length + 1)).astype(jnp.int32)
    t = jnp.arange(width, dtype=jnp.int32)
    gap = (t >= start) & (t < start + length)
    x = jnp.where(gap[None, :], jnp.zeros((), view.x.dtype), view.x)
    return View(x, view.rpeaks, view.lead_mask)
