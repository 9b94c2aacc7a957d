"""Per-example ECG augmentations as pure JAX functions of an explicit PRNG key.

`make_augment(cfg.augment, fs)` builds fn(key, View) -> View from `cfg.augment.ops`;
`augment_batch(fn, key, views)` vmaps it over a batch with one key per example. The figure
helpers live in `acl_jax.augment.plot` (not imported here, so the train step never loads
matplotlib).
"""

from acl_jax.augment.compose import REGISTRY, augment_batch, build_op, make_augment
from acl_jax.augment.physio import cycle_mask, cycle_mask_samples, scale_crop, time_shift
from acl_jax.augment.signal_ops import (
    amplitude_scale,
    baseline_wander,
    gaussian_noise,
    lead_dropout,
    powerline,
    timeout,
)
from acl_jax.augment.vcg import ecg_to_vcg, vcg_rotate_scale, vcg_to_ecg, vcg_transform
from acl_jax.augment.view import View, check_view, pack_rpeaks, valid_peaks, view_from_batch

__all__ = [
    "REGISTRY",
    "View",
    "amplitude_scale",
    "augment_batch",
    "baseline_wander",
    "build_op",
    "check_view",
    "cycle_mask",
    "cycle_mask_samples",
    "ecg_to_vcg",
    "gaussian_noise",
    "lead_dropout",
    "make_augment",
    "pack_rpeaks",
    "powerline",
    "scale_crop",
    "time_shift",
    "timeout",
    "valid_peaks",
    "vcg_rotate_scale",
    "vcg_to_ecg",
    "vcg_transform",
    "view_from_batch",
]
