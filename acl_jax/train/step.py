"""The sharded training step: one mesh axis "data" over every device of every process.

Parameters are replicated; the batch is split over "data". Augmentation, forward pass and
loss run per device inside `nnx.shard_map`, where the objective all-gathers embeddings for
negatives and returns the global mean loss (identical on every device). The gradient is taken
outside the shard_map, so JAX's transpose of the replicated-parameter broadcast sums the
per-device contributions exactly once: no hand-written psum (one would multiply the gradient
by the device count). BatchNorm layers are built with `axis_name="data"`, so their statistics
are those of the global batch and 8 devices compute what 1 device would.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import optax
from flax import nnx
from jax import P

DATA_AXIS = "data"


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes), axis "data"."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices)


def replicate(tree, mesh: jax.sharding.Mesh):
    """Places host-identical arrays on every device of `mesh` (works multi-process)."""
    sharding = jax.NamedSharding(mesh, P())
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
    )


def shard_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Per-process host batch (b, ...) -> global arrays (b * processes, ...) split over "data"."""
    sharding = jax.NamedSharding(mesh, P(DATA_AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def place_model(model: nnx.Module, mesh: jax.sharding.Mesh) -> None:
    """Replicates every variable of `model` (parameters, BatchNorm statistics) over `mesh`."""
    state = nnx.state(model)
    nnx.update(model, replicate(state, mesh))


def make_train_step(mesh: jax.sharding.Mesh, seed: int) -> Callable:
    """Returns `step(model, optimizer, batch, step_index) -> metrics` (jitted).

    Example i of step s gets key split(fold_in(key(seed), s), B)[i]: a resumed run draws
    exactly the augmentations an uninterrupted run would, and 8 devices draw what 1 does.
    """
    base_key = jax.random.key(seed)

    @nnx.shard_map(mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)), out_specs=(P(), P()))
    def sharded_loss(model, batch, keys):
        return model.loss(batch, keys, DATA_AXIS)

    @nnx.jit(donate_argnums=(0, 1))
    def train_step(model, optimizer, batch, step_index):
        global_batch = batch["signal"].shape[0]
        keys = jax.random.split(jax.random.fold_in(base_key, step_index), global_batch)
        keys = jax.sharding.reshard(keys, P(DATA_AXIS))

        def loss_fn(model):
            return sharded_loss(model, batch, keys)

        (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        grad_norm = optax.tree.norm(grads)
        optimizer.update(model, grads)
        model.update_targets(optimizer.step[...])
        return {**metrics, "loss": loss, "grad_norm": grad_norm}

    return train_step
