"""Orbax checkpoints of a pretraining run: WORKDIR/checkpoints/<step>/<item>, items:

  model      nnx.state of the objective's model (encoder, heads, momentum targets, BatchNorm stats)
  optimizer  nnx.state of the nnx.Optimizer (step count, moments)
  data_iter  the Grain iterator state (one file per process)
  meta       JSON: the full Config, the prepared data's rate and the acl_jax version

The eval binary rebuilds the model from `meta` and restores the `model` item alone
(`load_pretrainer`), so it needs neither the optimizer nor the data iterator.

A checkpoint can be damaged (a file deleted or truncated, a disk filling up) or vanish while it
is read (the trainer's keep=N rotation). Restoring "the latest" therefore tries the steps
newest-first and skips one that fails with a one-line warning naming the step, the item and the
error; an explicitly requested step that fails is an error naming it and the other steps.
Training moves a step it skipped to WORKDIR/checkpoints_damaged/ (kept for inspection), so it
can save that step again when it gets there.
"""

from __future__ import annotations

import json
from pathlib import Path

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx
from jax.experimental import multihost_utils

import acl_jax
from acl_jax.config import Config, ConfigError, from_dict, to_dict
from acl_jax.models.roles import Trainable
from acl_jax.objectives import build_pretrainer
from acl_jax.train.ckpt_read import (
    CheckpointError,
    CheckpointNotFound,
    Unreadable,
    read_all_arrays,
    restore_item,
    warn,
)

CKPT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints_damaged"


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
        """`data_iter`: the Grain iterator, or an `acl_jax.train.feed.IteratorState` (the state
        at `step` when the loop has already read batches beyond it)."""
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

    def restore(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer, data_iter) -> int:
        """Restores `step` in place (arrays land with the shardings they have now), or, where it
        fails to restore, the newest older step that does. Returns the step restored.

        Each skipped step gets one warning line and is moved to WORKDIR/checkpoints_damaged/, so
        that it is never resumed later and the run can save that step again. Raises
        CheckpointError when no step restores.
        """
        failures: list[Unreadable] = []
        for s in sorted((x for x in self.manager.all_steps() if x <= step), reverse=True):
            error = self._check_step(s)
            if jax.process_count() > 1:
                # Orbax's restores hold barriers: every process tries the same step or none does.
                ok = multihost_utils.process_allgather(np.int32(error is None))
                if error is None and not np.all(ok):
                    error = Unreadable(s, "data_iter", RuntimeError("another process's failed"))
            if error is None:
                try:
                    states = self._read_step(s, model, optimizer, data_iter)
                except Unreadable as e:
                    if jax.process_count() > 1:  # processes may be out of step: stop here
                        raise CheckpointError(f"checkpoint {s} in {self.directory}: {e}") from e
                    error = e
            if error is not None:
                warn(f"checkpoint {s} is unreadable ({error.item}: {error.reason}); skipped")
                failures.append(error)
                continue
            nnx.update(model, states[0])
            nnx.update(optimizer, states[1])
            self._set_aside([f.step for f in failures])
            return s
        details = "; ".join(str(f) for f in failures)
        raise CheckpointError(
            f"no checkpoint in {self.directory} restores ({details}); move the directory away "
            "to start the run afresh"
        )

    def _check_step(self, step: int) -> Unreadable | None:
        """Reads this process's files of `step` without Orbax (so without its barriers): the
        meta JSON, every array chunk and this process's data-iterator state."""
        path = self.directory / str(step)
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        for item, check in (
            ("meta", lambda: json.loads((path / "meta" / "metadata").read_text())),
            ("model", lambda: read_all_arrays(path / "model")),
            ("optimizer", lambda: read_all_arrays(path / "optimizer")),
            ("data_iter", lambda: json.loads((path / "data_iter" / name).read_text())),
        ):
            try:
                check()
            except Exception as e:  # missing file, truncated data, bad JSON
                return Unreadable(step, item, e)
        return None

    def _read_step(self, step: int, model: nnx.Module, optimizer: nnx.Optimizer, data_iter):
        # meta first: a step without it is useless to eval even when training could resume it.
        restore_item(self.manager, step, "meta", ocp.args.JsonRestore())
        states = (
            restore_item(
                self.manager,
                step,
                "model",
                ocp.args.StandardRestore(_abstract(nnx.state(model))),
                precheck=False,
            ),
            restore_item(
                self.manager,
                step,
                "optimizer",
                ocp.args.StandardRestore(_abstract(nnx.state(optimizer))),
                precheck=False,
            ),
        )
        # Last: it sets the iterator's state in place, so only once the arrays have been read.
        restore_item(self.manager, step, "data_iter", grain.checkpoint.CheckpointRestore(data_iter))
        return states

    def _set_aside(self, steps: list[int]) -> None:
        """Moves skipped steps out of the manager's sight (Orbax refuses to save a step that
        exists), keeping them under WORKDIR/checkpoints_damaged/<step>[.n] for inspection."""
        if not steps:
            return
        if jax.process_index() == 0:
            aside = self.directory.parent / DAMAGED_DIR
            aside.mkdir(parents=True, exist_ok=True)
            for s in steps:
                target, n = aside / str(s), 1
                while target.exists():
                    target, n = aside / f"{s}.{n}", n + 1
                (self.directory / str(s)).rename(target)
                warn(f"moved unreadable checkpoint {s} to {target}")
        multihost_utils.sync_global_devices("acl_jax:set_aside_damaged_checkpoints")
        self.manager.reload()

    def stored_config(self, step: int) -> dict:
        """The `meta` item of `step`, or of the newest older step whose meta reads (a run's
        config is the same in all its steps; `restore` warns about the unreadable ones)."""
        failures = []
        for s in sorted((x for x in self.manager.all_steps() if x <= step), reverse=True):
            try:
                return restore_item(self.manager, s, "meta", ocp.args.JsonRestore())
            except Unreadable as e:
                failures.append(str(e))
        raise CheckpointError(
            f"no checkpoint in {self.directory} has a readable meta item ({'; '.join(failures)})"
            "; move the directory away to start the run afresh"
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _load_step(manager: ocp.CheckpointManager, step: int) -> tuple[Trainable, Config, int]:
    meta = restore_item(manager, step, "meta", ocp.args.JsonRestore())
    try:
        cfg, fs = from_dict(meta["config"]), int(meta["fs"])
    except ConfigError:
        raise  # intact but from another acl_jax version: not damage, the message says the fix
    except Exception as e:  # a meta file that parses as JSON but is not ours
        raise Unreadable(step, "meta", e) from e
    model = build_pretrainer(cfg, fs=fs, bn_axis=None, rngs=nnx.Rngs(0))
    state = _abstract(nnx.state(model))
    nnx.update(model, restore_item(manager, step, "model", ocp.args.StandardRestore(state)))
    return model, cfg, fs


def _check_finite(model: Trainable, step: int, directory, steps: list[int]) -> None:
    """Refuses an encoder holding NaN/inf (a diverged run): its features would score chance."""
    arrays = [
        np.asarray(x)
        for x in jax.tree.leaves(nnx.state(model.encoder))
        if np.issubdtype(x.dtype, np.floating)
    ]
    bad = [int(x.size - np.isfinite(x).sum()) for x in arrays]
    if any(bad):
        earlier = [s for s in steps if s < step]
        raise CheckpointError(
            f"checkpoint {step} in {directory} holds non-finite encoder parameters "
            f"({sum(bad)} values in {sum(b > 0 for b in bad)} of {len(arrays)} arrays are "
            f"NaN/inf; the run diverged): evaluate an earlier step with --step "
            f"(available: {earlier or 'none'})"
        )


def load_pretrainer(
    workdir: str | Path, step: int | None = None, *, require_finite: bool = True
) -> tuple[Trainable, Config, int, int]:
    """Rebuilds the objective's model from the checkpoint's stored config and restores its weights.

    Returns (model, config, fs, step). Reads only the `meta` and `model` items, through a
    read-only manager, so it is safe while training is still writing new checkpoints.
    step=None: the newest step that restores (an unreadable newer one: one warning line each).
    A given step that fails raises CheckpointError (CheckpointNotFound if it was deleted
    meanwhile). require_finite: refuse an encoder with NaN/inf parameters (CheckpointError).
    """
    directory = workdir_path(workdir) / CKPT_DIR
    if not directory.is_dir():
        raise CheckpointNotFound(
            f"no checkpoints in {directory}: is {workdir} a workdir written "
            "by `python -m acl_jax.train --workdir ...`?"
        )
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True))
    try:  # always closed: an open manager's event loop dies noisily at exit
        steps = sorted(manager.all_steps())
        if not steps:
            raise CheckpointNotFound(f"{directory} holds no finished checkpoint yet")
        if step is not None and step not in steps:
            raise CheckpointNotFound(f"step {step} is not in {directory}; available: {steps}")
        failures = []
        for s in [step] if step is not None else steps[::-1]:
            try:
                model, cfg, fs = _load_step(manager, s)
                break
            except Unreadable as e:
                failures.append(e)
                if step is None:
                    warn(f"checkpoint {s} is unreadable ({e.item}: {e.reason}); skipped")
        else:
            if step is None:
                details = "; ".join(str(f) for f in failures)
                raise CheckpointError(f"no checkpoint in {directory} restores ({details})")
            if not (directory / str(step)).exists():
                raise CheckpointNotFound(
                    f"checkpoint {step} in {directory} was deleted while it was read (the run's "
                    "train.keep rotation)"
                )
            others = [s for s in steps if s != step]
            raise CheckpointError(
                f"checkpoint {step} in {directory} is unreadable ({failures[0].item}: "
                f"{failures[0].reason}); pick another with --step (available: {others or 'none'})"
            )
    finally:
        manager.close()
    if require_finite:
        _check_finite(model, s, directory, steps)
    return model, cfg, fs, s
