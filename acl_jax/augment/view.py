"""The unit every augmentation transforms: one ECG window with its R-peaks and lead mask.

An op is `op(key, view) -> view`: a pure function of an explicit PRNG key, same shapes and
dtypes out as in, so that ops compose freely, jit once and vmap over the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class View(NamedTuple):
    """One example (or, with a leading batch axis, a batch of them).

    x:         (12, W) float32, millivolts, canonical lead order (acl_jax.leads.LEADS).
    rpeaks:    (K,) int32 window-relative R-peak sample indices, valid ones sorted ascending
               first, then -1 padding.
    lead_mask: (12,) float32, 1.0 where the lead was recorded, 0.0 where absent (x is 0 there).
    """

    x: jax.Array
    rpeaks: jax.Array
    lead_mask: jax.Array


def view_from_batch(batch: dict) -> View:
    """View (with the batch axis) from a pipeline batch dict with signal, rpeaks, lead_mask."""
    missing = [k for k in ("signal", "rpeaks", "lead_mask") if k not in batch]
    if missing:
        raise KeyError(
            f"batch lacks {missing}; augmentations need 'signal' (b, 12, W), 'rpeaks' (b, K) "
            f"and 'lead_mask' (b, 12) as produced by acl_jax.data.pipeline (got {sorted(batch)})"
        )
    return View(
        x=jnp.asarray(batch["signal"], jnp.float32),
        rpeaks=jnp.asarray(batch["rpeaks"], jnp.int32),
        lead_mask=jnp.asarray(batch["lead_mask"], jnp.float32),
    )


def valid_peaks(rpeaks: jax.Array) -> jax.Array:
    """(K,) bool, True for real R-peaks (padding is -1)."""
    return rpeaks >= 0


def pack_rpeaks(positions: jax.Array, valid: jax.Array) -> jax.Array:
    """Re-packs peaks to the View convention: valid ones sorted ascending, then -1.

    positions: (K,) int32 candidate positions; valid: (K,) bool. Sorting K (~16) values is
    cheaper than any scatter-based compaction and keeps the shape fixed for jit.
    """
    sentinel = jnp.iinfo(jnp.int32).max
    keyed = jnp.sort(jnp.where(valid, positions.astype(jnp.int32), sentinel))
    return jnp.where(keyed == sentinel, -1, keyed).astype(jnp.int32)


def check_view(view: View) -> None:
    """Raises ValueError when a (single-example) View breaks the shape/dtype contract."""
    x, rpeaks, mask = view
    if x.ndim != 2 or x.shape[0] != 12:
        raise ValueError(f"View.x must be (12, W), got shape {x.shape}")
    if rpeaks.ndim != 1:
        raise ValueError(f"View.rpeaks must be (K,), got shape {rpeaks.shape}")
    if mask.shape != (12,):
        raise ValueError(f"View.lead_mask must be (12,), got shape {mask.shape}")
    for name, arr, dtype in (
        ("x", x, jnp.float32),
        ("rpeaks", rpeaks, jnp.int32),
        ("lead_mask", mask, jnp.float32),
    ):
        if arr.dtype != dtype:
            raise ValueError(f"View.{name} must be {jnp.dtype(dtype).name}, got {arr.dtype}")
