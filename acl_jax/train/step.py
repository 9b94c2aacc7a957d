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
import jax.numpy as jnp
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


def _process_local(batch: dict[str, np.ndarray], mesh, spec: P) -> dict[str, jax.Array]:
    sharding = jax.NamedSharding(mesh, spec)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def shard_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Per-process host batch (b, ...) -> global arrays (b * processes, ...) split over "data"."""
    return _process_local(batch, mesh, P(DATA_AXIS))


def place_model(model: nnx.Module, mesh: jax.sharding.Mesh) -> None:
    """Replicates every variable of `model` (parameters, BatchNorm statistics) over `mesh`."""
    state = nnx.state(model)
    nnx.update(model, replicate(state, mesh))


def _step_fn(mesh: jax.sharding.Mesh, seed: int) -> Callable:
    """The one training step, unjitted: `step(model, optimizer, batch, step_index) -> metrics`.

    Example i of step s gets key split(fold_in(key(seed), s), B)[i]: a resumed run draws
    exactly the augmentations an uninterrupted run would, 8 devices draw what 1 does, and K
    steps per call draw what K calls of one step do.
    """
    base_key = jax.random.key(seed)

    @nnx.shard_map(mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)), out_specs=(P(), P()))
    def sharded_loss(model, batch, keys):
        return model.loss(batch, keys, DATA_AXIS)

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


def make_train_step(mesh: jax.sharding.Mesh, seed: int) -> Callable:
    """Returns `step(model, optimizer, batch, step_index) -> metrics` (jitted): one step on one
    batch, for the evaluation's fine-tuning and the benches. The pretraining loop runs the same
    step through `make_train_steps`."""
    return nnx.jit(_step_fn(mesh, seed), donate_argnums=(0, 1))


def make_train_steps(mesh: jax.sharding.Mesh, seed: int) -> Callable:
    """Returns `steps(model, optimizer, batches, first_step) -> metrics` (jitted): the steps
    first_step, first_step + 1, ..., first_step + n - 1 on batches (n, B, ...) in one compiled
    call (the step traced n times in sequence), so dispatch and Python costs are paid once per
    n steps.
    Metrics come back stacked, each (n,). Each step keys its augmentations on its own index,
    as `make_train_step` does, so n steps per call train what n calls of one step do.
    """
    step = _step_fn(mesh, seed)

    @nnx.jit(donate_argnums=(0, 1))
    def train_steps(model, optimizer, batches, first_step):
        # Traced n times, not a lax.scan: on XLA:CPU the same step ran 5-25x slower as a
        # while-loop body (measured, jax 0.10.2). Compile time grows with n; step time does not.
        # n == 1 compiles to what `make_train_step` does (bit-identical results).
        metrics = []
        for i in range(batches["signal"].shape[0]):
            batch = jax.tree.map(lambda x, i=i: x[i], batches)
            metrics.append(step(model, optimizer, batch, first_step + i))
        return jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)

    return train_steps


def shard_batches(batches: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Per-process host batches (n, b, ...) -> global arrays (n, b * processes, ...), each
    batch split over "data" (the input of `make_train_steps`)."""
    return _process_local(batches, mesh, P(None, DATA_AXIS))
