"""Orbax checkpoints of a pretraining run: WORKDIR/checkpoints/<step>/<item>, items:

  model      nnx.state of the objective's model (encoder, heads, momentum targets, BatchNorm stats)
  optimizer  nnx.state of the nnx.Optimizer (step count, moments)
  data_iter  the Grain iterator state (one file per process)
  meta       JSON: the full Config, the prepared data's rate and the acl_jax version

The eval binary rebuilds the model from `meta` and restores the `model` item alone
(`load_pretrainer`), so it needs neither the optimizer nor the data iterator.
"""

from __future__ import annotations

from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

import acl_jax
from acl_jax.config import Config, from_dict, to_dict
from acl_jax.models.roles import Trainable
from acl_jax.objectives import build_pretrainer

CKPT_DIR = "checkpoints"


class CheckpointNotFound(FileNotFoundError):
    pass


def workdir_path(workdir: str | Path) -> epath.Path:
    """Local paths made absolute (Orbax needs that); gs:// and other URLs kept as they are."""
    path = epath.Path(workdir)
    return path if "://" in str(workdir) else epath.Path(Path(workdir).absolute())


def _abstract(state):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class Checkpointer:
    """Saves and restores (model, optimizer, data iterator, meta) under WORKDIR/checkpoints."""

    def __init__(self, workdir: str | Path, *, keep: int, use_async: bool):
        self.directory = workdir_path(workdir) / CKPT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=use_async
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(
        self,
        step: int,
        model: nnx.Module,
        optimizer: nnx.Optimizer,
        data_iter,
        cfg: Config,
        fs: int,
    ) -> None:
        meta = {"config": to_dict(cfg), "fs": fs, "acl_jax_version": acl_jax.__version__}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                model=ocp.args.StandardSave(nnx.state(model)),
                optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
                data_iter=grain.checkpoint.CheckpointSave(data_iter),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def restore(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer, data_iter) -> None:
        """Restores everything in place (arrays land with the shardings they have now)."""
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                model=ocp.args.StandardRestore(_abstract(nnx.state(model))),
                optimizer=ocp.args.StandardRestore(_abstract(nnx.state(optimizer))),
                data_iter=grain.checkpoint.CheckpointRestore(data_iter),
            ),
        )
        nnx.update(model, out.model)
        nnx.update(optimizer, out.optimizer)

    def stored_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def load_pretrainer(
    workdir: str | Path, step: int | None = None
) -> tuple[Trainable, Config, int, int]:
    """Rebuilds the objective's model from the checkpoint's stored config and restores its weights.

    Returns (model, config, fs, step). Reads only the `meta` and `model` items, through a
    read-only manager, so it is safe while training is still writing new checkpoints.
    """
    directory = workdir_path(workdir) / CKPT_DIR
    if not directory.is_dir():
        raise CheckpointNotFound(
            f"no checkpoints in {directory}: is {workdir} a workdir written "
            "by `python -m acl_jax.train --workdir ...`?"
        )
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True))
    steps = manager.all_steps()
    if not steps:
        raise CheckpointNotFound(f"{directory} holds no finished checkpoint yet")
    if step is None:
        step = max(steps)
    elif step not in steps:
        raise CheckpointNotFound(f"step {step} is not in {directory}; available: {sorted(steps)}")
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    cfg = from_dict(meta["config"])
    fs = int(meta["fs"])
    model = build_pretrainer(cfg, fs=fs, bn_axis=None, rngs=nnx.Rngs(0))
    restored = manager.restore(
        step, args=ocp.args.Composite(model=ocp.args.StandardRestore(_abstract(nnx.state(model))))
    ).model
    nnx.update(model, restored)
    manager.close()
    return model, cfg, fs, step
