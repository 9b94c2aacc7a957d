"""Per-record outputs of a frozen module over a split's sliding windows, sharded on all devices.

The module runs in inference mode (BatchNorm running averages: `nnx.view(...,
use_running_average=True)`), so a window's output does not depend on what else is in its batch
and padding rows (valid=False) are harmless. Window batches are split over the mesh's "data"
axis inside `nnx.shard_map` (every device of every process works), gathered back to every host
with their `record` and `valid` keys, and averaged per record.

Encoders differ in what they read from a batch: ECGEncoder takes (signal, lead_mask), CLEAR's
BeatTransformer (class attribute `needs_rpeaks = True`) also the window's R-peaks. `encode`
is the one place that knows this; every protocol calls encoders through it, and the batches
handed to modules always carry "signal", "lead_mask" and "rpeaks".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import jax
import numpy as np
from flax import nnx
from jax import P
from jax.experimental import multihost_utils

from acl_jax.config import Config
from acl_jax.data import pipeline
from acl_jax.models.roles import Encoder
from acl_jax.train.step import DATA_AXIS, shard_batch

# Keys of a pipeline batch that modules read (signal (b, 12, W), lead_mask (b, 12), rpeaks (b, K)).
MODEL_KEYS = ("signal", "lead_mask", "rpeaks")
# forward(module, batch with MODEL_KEYS) -> (b, ...) float32
Forward = Callable[[nnx.Module, Mapping[str, jax.Array]], jax.Array]


def encode(encoder: Encoder, batch: Mapping[str, jax.Array]):
    """`encoder`'s Features of batch["signal"] (b, 12, W), with batch["lead_mask"] (b, 12) and,
    for encoders that need them, batch["rpeaks"] (b, K) window-relative (-1 padded)."""
    if not encoder.needs_rpeaks:
        return encoder(batch["signal"], batch["lead_mask"])
    if "rpeaks" not in batch:
        raise ValueError(
            f"{type(encoder).__name__} needs batch['rpeaks'] (window-relative R-peaks): pass "
            "the pipeline's batch with its 'rpeaks' key"
        )
    return encoder(batch["signal"], batch["lead_mask"], batch["rpeaks"])


def encoder_features(encoder: Encoder, batch: Mapping[str, jax.Array]) -> jax.Array:
    """The encoder's global features (b, D): what the linear probe sees."""
    return encode(encoder, batch).global_


def inference_view(module: nnx.Module) -> nnx.Module:
    """A view of `module` sharing its weights with BatchNorm on running statistics (a
    module without BatchNorm, e.g. CLEAR's transformer, is returned as such a view too)."""
    return nnx.view(module, use_running_average=True, raise_if_not_found=False)


@functools.lru_cache(maxsize=8)
def sharded(forward: Forward, mesh: jax.sharding.Mesh) -> Callable:
    """`fn(module, batch) -> forward(module, batch)` jitted, the batch's rows split over the
    mesh's "data" axis. Cached per (forward, mesh): periodic validation reuses one compile."""

    @nnx.shard_map(mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS))
    def per_device(module, batch):
        return forward(module, batch).astype(np.float32)

    return nnx.jit(per_device)


def eval_window(cfg: Config) -> int:
    """The window the encoder is evaluated (and fine-tuned) on: cfg.data.eval_window, or the
    pretraining window when 0 (objectives like CMSC pretrain on shorter segments)."""
    return cfg.data.eval_window or cfg.data.window


def global_batch_size(batch_size: int) -> int:
    """`batch_size` rounded up to a multiple of the device count (every device gets rows)."""
    n = jax.device_count()
    return max(n, math.ceil(batch_size / n) * n)


def record_outputs(
    module: nnx.Module,
    forward: Forward,
    data_dir: str,
    split: str,
    cfg: Config,
    mesh: jax.sharding.Mesh,
    *,
    batch_size: int,
) -> np.ndarray:
    """(num_records, K) float32: forward's output averaged over each record's windows.

    `module` must already be replicated on `mesh` (acl_jax.train.step.place_model) and in
    inference mode (`inference_view`). Windows are `eval_window(cfg)` long with stride
    cfg.data.eval_stride (0: the window).
    """
    n_proc = jax.process_count()
    bsz = global_batch_size(batch_size)
    window = eval_window(cfg)
    ds, num_windows = pipeline.eval_dataset(
        data_dir,
        split,
        window=window,
        stride=cfg.data.eval_stride or window,
        max_beats=cfg.data.max_beats,
        batch_size=bsz // n_proc,
        process_index=jax.process_index(),
        process_count=n_proc,
    )
    num_records = int(pipeline.read_manifest(data_dir)["splits"][split]["num_records"])
    fn = sharded(forward, mesh)
    sums, counts = None, np.zeros(num_records, np.int64)
    for host in ds:
        batch = shard_batch({k: host[k] for k in (*MODEL_KEYS, "record", "valid")}, mesh)
        out = fn(module, {k: batch[k] for k in MODEL_KEYS})
        out, record, valid = (
            np.asarray(multihost_utils.process_allgather(a, tiled=True))
            for a in (out, batch["record"], batch["valid"])
        )
        if sums is None:
            sums = np.zeros((num_records, out.shape[1]), np.float64)
        np.add.at(sums, record[valid], out[valid])
        np.add.at(counts, record[valid], 1)
    if counts.sum() != num_windows or (counts == 0).any():
        raise RuntimeError(
            f"split {split!r}: {counts.sum()} windows seen, {num_windows} expected; "
            f"records without a window: {np.flatnonzero(counts == 0)[:10]}"
        )
    return (sums / counts[:, None]).astype(np.float32)
