"""Cross-device reductions every objective's loss is built from (docs/contracts.md).

Losses run inside `jax.shard_map` over `axis_name` with b examples per device (N = b x devices
in the global batch). Each helper is the identity when `axis_name` is None (one device), so a
loss written with them gives the single-device value on any device count, and `jax.grad` taken
outside the shard_map is the single-device gradient (the transpose of `all_gather` returns each
device's share of the candidate gradient to the device that owns those rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def gather(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Concatenates the leading axis over all devices of `axis_name` (identity when None)."""
    return x if axis_name is None else lax.all_gather(x, axis_name, axis=0, tiled=True)


def gather_replicated(x: jax.Array, axis_name: str | None) -> jax.Array:
    """`gather`, typed as invariant across devices, so it can be stored in replicated state."""
    if axis_name is None:
        return x
    return lax.all_gather(x, axis_name, axis=0, tiled=True, to="invarying")


def global_sum(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Sum over devices of `axis_name` (identity when None); the result is device-invariant."""
    return x if axis_name is None else lax.psum(x, axis_name)


def global_count(b: int, axis_name: str | None) -> int:
    """Global batch size N for a per-device batch of b rows (static)."""
    return b if axis_name is None else b * lax.axis_size(axis_name)


def pair_indices(b: int, n: int, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """Global candidate indices of this device's 2b anchors and of their positives.

    Anchors are ordered (view 1 examples 0..b-1, view 2 examples 0..b-1); candidates are the
    gathered (view 1 of all N, view 2 of all N). Returns (self_index (2b,), positive_index (2b,)).
    """
    offset = 0 if axis_name is None else lax.axis_index(axis_name) * b
    local = offset + jnp.arange(b)
    self_index = jnp.concatenate([local, local + n])
    positive_index = jnp.concatenate([local + n, local])
    return self_index, positive_index
