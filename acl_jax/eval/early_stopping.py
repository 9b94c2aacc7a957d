"""Supervised training with early stopping on a validation score, shared by fine-tuning,
the HUG head and LUDB segmentation.

The model trains with the pretraining step (`make_train_step`: sharded, global-mean loss,
synced BatchNorm); every `opts.eval_every` steps `validate()` scores it, the best state is kept
as a host copy, training stops after `opts.patience` evaluations without gain, and the model is
left at its best state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import jax
import numpy as np
import optax
from flax import nnx

from acl_jax.train.step import make_train_step, place_model, replicate, shard_batch


def _encoder_or_head(params):
    """The optimizer's label of each parameter: "encoder" under the model's `encoder`
    attribute, "head" for everything else (heads, HUG pooling, segmentation heads)."""

    def label(path, _):
        return "encoder" if path and getattr(path[0], "key", None) == "encoder" else "head"

    return jax.tree_util.tree_map_with_path(label, params)


def optimizer_for(lr: float, encoder_lr_scale: float) -> optax.GradientTransformation:
    """Global-norm clipping at 1, then AdamW (weight decay 1e-4) at `lr` for the head and at
    lr * encoder_lr_scale for the encoder (discriminative fine-tuning; 1.0: one rate)."""
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.multi_transform(
            {
                "encoder": optax.adamw(lr * encoder_lr_scale, weight_decay=1e-4),
                "head": optax.adamw(lr, weight_decay=1e-4),
            },
            _encoder_or_head,
        ),
    )


def train_with_early_stopping(
    model: nnx.Module,
    batches: Iterator[dict],
    opts,
    mesh,
    *,
    trainable,
    validate: Callable[[], float],
    what: str,
    score_name: str,
    lr_hint: str,
    no_score_hint: str,
) -> dict:
    """Trains `model` in place on host `batches`; returns the selection record.

    opts: steps, eval_every, patience, lr, encoder_lr_scale, seed. trainable: the nnx filter
    of updated params.
    Returns {best_step, best_score, history (step -> score), steps_run, train_seconds}.
    """
    tx = optimizer_for(opts.lr, opts.encoder_lr_scale)
    history: dict[str, float] = {}
    best, best_step, best_state, stale = -np.inf, 0, None, 0
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):
        place_model(model, mesh)
        optimizer = nnx.Optimizer(model, tx, wrt=trainable)
        step_fn = make_train_step(mesh, opts.seed)
        step = 0
        for step in range(1, opts.steps + 1):
            metrics = step_fn(model, optimizer, shard_batch(next(batches), mesh), np.int32(step))
            if step % opts.eval_every and step != opts.steps:
                continue
            loss = float(metrics["loss"])
            if not np.isfinite(loss):
                raise FloatingPointError(f"{what} loss is {loss} at step {step}: {lr_hint}")
            score = validate()
            history[str(step)] = score
            print(
                f"{what} step {step}/{opts.steps}: loss {loss:.4f}, val {score_name} {score:.4f}",
                flush=True,
            )
            if np.isfinite(score) and score > best:
                best, best_step, stale = score, step, 0
                # Host copy of one replica (replicated arrays are identical on every device).
                best_state = jax.tree.map(
                    lambda a: np.array(a.addressable_data(0)), nnx.state(model)
                )
            else:
                stale += 1
                if stale >= opts.patience:
                    break
        if best_state is None:
            raise ValueError(
                f"{what} never produced a finite validation {score_name}: {no_score_hint}"
            )
        nnx.update(model, replicate(best_state, mesh))
    return {
        "best_step": best_step,
        "best_score": best,
        "history": history,
        "steps_run": step,
        "train_seconds": time.perf_counter() - t0,
    }
