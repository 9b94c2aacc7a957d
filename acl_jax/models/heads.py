"""Projection heads mapping encoder features to the contrastive embedding space, and the loss
and probabilities of the supervised classification heads (eval's classifier, HUG)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from acl_jax.models.batchnorm import MaskedBatchNorm
from acl_jax.models.resnet1d import compute_dtype


class MLPHead(nnx.Module):
    """SimCLR-style projection head: (Linear -> BatchNorm -> ReLU) x (num_layers-1) -> Linear.

    Applies to (..., d_in) inputs, e.g. global (B, D) or region (B, R, D) features: the leading
    axes are flattened so BatchNorm statistics cover every vector. `mask` (...,) 0/1 (e.g.
    `Features.region_mask`) excludes vectors from those statistics, so empty regions (zero
    vectors) do not skew them. Returns (..., d_out) float32. `bn_axis` names the mesh axis for
    cross-device statistics (None: local).
    """

    def __init__(
        self,
        d_in: int,
        hidden: int,
        d_out: int,
        *,
        bn_axis: str | None = None,
        rngs: nnx.Rngs,
        num_layers: int = 2,
        dtype: str = "float32",
    ):
        if num_layers < 1:
            raise ValueError(f"MLPHead num_layers must be >= 1, got {num_layers}")
        cdt = compute_dtype(dtype)
        dims = [d_in] + [hidden] * (num_layers - 1)
        self.hidden = nnx.List(
            [
                # No bias: the BatchNorm right after would cancel it.
                nnx.Linear(a, b, use_bias=False, dtype=cdt, rngs=rngs)
                for a, b in zip(dims[:-1], dims[1:])
            ]
        )
        self.norms = nnx.List(
            [MaskedBatchNorm(b, dtype=cdt, axis_name=bn_axis, rngs=rngs) for b in dims[1:]]
        )
        self.out = nnx.Linear(dims[-1], d_out, dtype=cdt, rngs=rngs)
        self.d_in = d_in

    def __call__(self, x, mask=None):
        if x.shape[-1] != self.d_in:
            raise ValueError(f"MLPHead expects (..., {self.d_in}) inputs, got {x.shape}")
        lead_shape = x.shape[:-1]
        h = x.reshape(-1, self.d_in)
        flat_mask = None if mask is None else jnp.reshape(mask, (-1,))
        for linear, norm in zip(self.hidden, self.norms):
            h = jax.nn.relu(norm(linear(h), mask=flat_mask))
        return self.out(h).astype(jnp.float32).reshape(*lead_shape, -1)


def classification_loss(logits: jax.Array, labels: jax.Array, single: bool, axis_name: str | None):
    """logits, labels (b, C) -> (global mean over rows of softmax cross-entropy (single-label)
    or per-class BCE averaged over classes, {"loss_supervised": the same})."""
    if single:
        per_row = optax.softmax_cross_entropy(logits, labels)
    else:
        per_row = optax.sigmoid_binary_cross_entropy(logits, labels).mean(axis=-1)
    total, count = per_row.sum(), jnp.asarray(per_row.shape[0], jnp.float32)
    if axis_name is not None:
        total, count = jax.lax.psum((total, count), axis_name)
    loss = total / count
    return loss, {"loss_supervised": loss}


def class_probabilities(logits: jax.Array, single: bool) -> jax.Array:
    """(b, C) softmax (single-label) or sigmoid (multi-label) probabilities of logits (b, C)."""
    return jax.nn.softmax(logits) if single else jax.nn.sigmoid(logits)
