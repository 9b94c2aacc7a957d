"""From `cfg.augment.ops` to one per-example function, and its batched (vmapped) application.

Static parameters (AugmentConfig fields, the sampling rate fs) are closed over with
functools.partial when the chain is built, so jit sees Python numbers, never tracers.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable

import jax

from acl_jax.augment import frequency, physio, signal_ops, vcg
from acl_jax.augment.view import View
from acl_jax.config import AugmentConfig

Op = Callable[[jax.Array, View], View]


def _check(cond: bool, field: str, value, need: str) -> None:
    if not cond:
        raise ValueError(
            f"augment.{field}={value!r} is invalid: it must be {need} "
            f"(set --config.augment.{field}=...)"
        )


def _scale_crop(c: AugmentConfig, fs: int) -> Op:
    _check(0.0 < c.scale_crop_min <= 1.0, "scale_crop_min", c.scale_crop_min, "in (0, 1]")
    return functools.partial(physio.scale_crop, min_scale=c.scale_crop_min)


def _cycle_mask(c: AugmentConfig, fs: int) -> Op:
    _check(0.0 <= c.cycle_mask_prob <= 1.0, "cycle_mask_prob", c.cycle_mask_prob, "in [0, 1]")
    _check(c.cycle_mask_max >= 0, "cycle_mask_max", c.cycle_mask_max, ">= 0")
    return functools.partial(physio.cycle_mask, prob=c.cycle_mask_prob, max_cycles=c.cycle_mask_max)


def _time_shift(c: AugmentConfig, fs: int) -> Op:
    _check(0.0 <= c.time_shift_max <= 1.0, "time_shift_max", c.time_shift_max, "in [0, 1]")
    return functools.partial(physio.time_shift, max_frac=c.time_shift_max)


def _gaussian_noise(c: AugmentConfig, fs: int) -> Op:
    _check(c.noise_std >= 0.0, "noise_std", c.noise_std, ">= 0 (mV)")
    return functools.partial(signal_ops.gaussian_noise, std=c.noise_std)


def _amplitude_scale(c: AugmentConfig, fs: int) -> Op:
    _check(
        0.0 < c.amplitude_min <= c.amplitude_max,
        "amplitude_min",
        c.amplitude_min,
        f"> 0 and <= amplitude_max={c.amplitude_max}",
    )
    return functools.partial(signal_ops.amplitude_scale, low=c.amplitude_min, high=c.amplitude_max)


def _baseline_wander(c: AugmentConfig, fs: int) -> Op:
    _check(c.wander_amp >= 0.0, "wander_amp", c.wander_amp, ">= 0 (mV)")
    _check(
        0.0 <= c.wander_freq_max <= fs / 2,
        "wander_freq_max",
        c.wander_freq_max,
        f"in [0, fs/2 = {fs / 2}] Hz",
    )
    return functools.partial(
        signal_ops.baseline_wander, fs=fs, amp=c.wander_amp, freq_max=c.wander_freq_max
    )


def _powerline(c: AugmentConfig, fs: int) -> Op:
    _check(c.powerline_amp >= 0.0, "powerline_amp", c.powerline_amp, ">= 0 (mV)")
    # Above Nyquist the sinusoid would alias to a different frequency than the one asked for.
    _check(
        0.0 < c.powerline_freq <= fs / 2,
        "powerline_freq",
        c.powerline_freq,
        f"in (0, fs/2 = {fs / 2}] Hz for the prepared rate fs={fs}",
    )
    return functools.partial(
        signal_ops.powerline, fs=fs, amp=c.powerline_amp, freq=c.powerline_freq
    )


def _lead_dropout(c: AugmentConfig, fs: int) -> Op:
    _check(0.0 <= c.lead_dropout_prob <= 1.0, "lead_dropout_prob", c.lead_dropout_prob, "in [0, 1]")
    return functools.partial(signal_ops.lead_dropout, prob=c.lead_dropout_prob)


def _timeout(c: AugmentConfig, fs: int) -> Op:
    _check(0.0 <= c.timeout_max <= 1.0, "timeout_max", c.timeout_max, "in [0, 1]")
    return functools.partial(signal_ops.timeout, max_frac=c.timeout_max)


def _vcg_rotate_scale(c: AugmentConfig, fs: int) -> Op:
    _check(c.vcg_max_angle >= 0.0, "vcg_max_angle", c.vcg_max_angle, ">= 0 (degrees)")
    _check(
        0.0 < c.vcg_scale_min <= c.vcg_scale_max,
        "vcg_scale_min",
        c.vcg_scale_min,
        f"> 0 and <= vcg_scale_max={c.vcg_scale_max}",
    )
    return functools.partial(
        vcg.vcg_rotate_scale,
        max_angle=c.vcg_max_angle,
        scale_min=c.vcg_scale_min,
        scale_max=c.vcg_scale_max,
    )


# name -> builder(cfg, fs) -> op(key, view). The names are what cfg.augment.ops lists.
REGISTRY: dict[str, Callable[[AugmentConfig, int], Op]] = {
    "scale_crop": _scale_crop,
    "cycle_mask": _cycle_mask,
    "time_shift": _time_shift,
    "gaussian_noise": _gaussian_noise,
    "amplitude_scale": _amplitude_scale,
    "baseline_wander": _baseline_wander,
    "powerline": _powerline,
    "lead_dropout": _lead_dropout,
    "timeout": _timeout,
    "vcg_rotate_scale": _vcg_rotate_scale,
    "fda": frequency.build_fda,  # CoRe-ECG's frequency dynamic augmentation, default bands
}


def build_op(name: str, cfg: AugmentConfig, fs: int) -> Op:
    """The single op `name` with its static parameters from `cfg` and `fs` closed over."""
    if name not in REGISTRY:
        raise ValueError(
            f"unknown augmentation {name!r} in augment.ops; valid names: {sorted(REGISTRY)}"
        )
    return REGISTRY[name](cfg, fs)


def make_augment(cfg: AugmentConfig, fs: int) -> Op:
    """fn(key, view) -> view applying `cfg.ops` in order, each with its own subkey.

    Subkey i of `jax.random.split(key, len(cfg.ops))` drives op i, so an op's randomness does
    not change when another op is added after it. An empty `ops` gives the identity.
    """
    if isinstance(fs, bool) or not isinstance(fs, numbers.Integral) or fs <= 0:
        raise ValueError(f"fs must be a positive int (the prepared sampling rate), got {fs!r}")
    fs = int(fs)
    ops = [build_op(name, cfg, fs) for name in cfg.ops]

    def augment(key: jax.Array, view: View) -> View:
        if not ops:
            return view
        for op, k in zip(ops, jax.random.split(key, len(ops))):
            view = op(k, view)
        return view

    return augment


def augment_batch(fn: Op, key: jax.Array, views: View) -> View:
    """Applies per-example `fn` to a batched View (leading axis b) with one key per example.

    views: View(x (b, 12, W), rpeaks (b, K), lead_mask (b, 12)) -> same shapes. Call it inside
    the jitted step; in a shard_map, fold the device index into `key` first so devices differ.
    """
    keys = jax.random.split(key, views.x.shape[0])
    return jax.vmap(fn)(keys, views)
