"""The pretraining loop: data read ahead -> K sharded steps per call -> metrics -> checkpoints.

A run is a pure function of (config, seed, data): the step-s PRNG key is derived from the
seed and s, the Grain iterator state is checkpointed with the model, so a run killed at any
point and restarted on the same workdir continues as if it had never stopped.

Per call of `train.steps_per_call` steps the host only dispatches the call and reads and places
the next call's batches (acl_jax.train.feed); it waits for the device at log steps (metrics one
call late), at checkpoints, and for the call before the previous one (at most two in flight).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acl_jax.config import Config, check_schedule, from_dict, to_dict
from acl_jax.data import pipeline
from acl_jax.objectives import build_pretrainer
from acl_jax.train.checkpoint import Checkpointer
from acl_jax.train.feed import Feed, call_lengths
from acl_jax.train.optim import make_optimizer
from acl_jax.train.preemption import StopFlag
from acl_jax.train.preflight import check_data
from acl_jax.train.reporting import Reporter
from acl_jax.train.step import DATA_AXIS, make_mesh, make_train_steps, place_model

# Fields that may change between a run and its resumption without changing the result.
RESUMABLE_CHANGES = {
    "train.log_every",
    "train.ckpt_every",
    "train.keep",
    "train.async_checkpoint",
    "data.num_workers",
    "data.prefetch",
    "data.dir",
}


class NonFiniteLoss(RuntimeError):
    pass


class NonFiniteState(NonFiniteLoss):
    """Parameters or optimizer state went inf/NaN (their loss may still have been finite)."""


class ConfigMismatch(ValueError):
    pass


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def _check_resumable(stored: dict, cfg: Config, workdir: Path) -> None:
    # Through from_dict: fields added since the checkpoint was written take their defaults.
    old, new = _flatten(to_dict(from_dict(stored))), _flatten(to_dict(cfg))
    diff = sorted(
        k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
    )
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise ConfigMismatch(
            f"{workdir} holds a run with a different config ({details}); "
            "resume with the same config or start a new --workdir"
        )


def _floating_leaves(*trees) -> list[jax.Array]:
    return [
        x
        for x in jax.tree.leaves(trees)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
    ]


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    """One device reduction over every floating array: a scalar bool, replicated."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves]))


def _state_is_finite(model: nnx.Module, optimizer: nnx.Optimizer) -> bool:
    return bool(_all_finite(_floating_leaves(nnx.state(model), nnx.state(optimizer))))


def train(cfg: Config, workdir: str | Path) -> dict:
    """Pretrains per `cfg` in `workdir` (resuming from its latest checkpoint). Returns a summary.

    Stops early, exit-clean, on SIGTERM (saving the current step if it is new); raises
    NonFiniteLoss / NonFiniteState if the loss or the state stops being finite, having saved
    only checkpoints whose every parameter and optimizer value is finite.
    """
    stop = StopFlag.acquire()  # first: a SIGTERM from here on never kills the process
    try:
        return _train(cfg, workdir, stop)
    finally:
        stop.release()


def build_state(cfg: Config, mesh: jax.sharding.Mesh, fs: int):
    """(model, optimizer, lr schedule, data iterator) at step 0, placed on `mesh`; call under
    `jax.set_mesh(mesh)`. A restore overwrites them; the same build is what a resume restores
    into, so tests and benches that inspect checkpoints use it too."""
    n_proc = jax.process_count()
    model = build_pretrainer(cfg, fs=fs, bn_axis=DATA_AXIS, rngs=nnx.Rngs(cfg.seed))
    place_model(model, mesh)
    tx, schedule = make_optimizer(cfg.optim, cfg.data.batch_size, cfg.train.steps)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    data_iter = iter(
        pipeline.train_dataset(
            cfg.data.dir,
            cfg.data.train_split,
            window=cfg.data.window,
            max_beats=cfg.data.max_beats,
            batch_size=cfg.data.batch_size // n_proc,
            seed=cfg.seed,
            process_index=jax.process_index(),
            process_count=n_proc,
            num_workers=cfg.data.num_workers,
            prefetch=cfg.data.prefetch,
        )
    )
    return model, optimizer, schedule, data_iter


def _train(cfg: Config, workdir: str | Path, stop: StopFlag) -> dict:
    check_schedule(cfg)  # also for configs built by from_dict, which skips it
    summary = {"step": 0, "metrics": {}, "checkpoints": None, "preempted": True, "params": 0}
    if stop.requested:
        print("SIGTERM during startup: nothing new to save", flush=True)
        return summary
    manifest = pipeline.read_manifest(cfg.data.dir)
    fs = int(manifest["fs"])
    mesh = make_mesh()
    n_dev, n_proc = jax.device_count(), jax.process_count()
    check_data(cfg, manifest, n_dev)
    with jax.set_mesh(mesh):
        model, optimizer, schedule, data_iter = build_state(cfg, mesh, fs)
        ckpt = Checkpointer(workdir, keep=cfg.train.keep, use_async=cfg.train.async_checkpoint)
        start = ckpt.latest_step() or 0
        if start:
            _check_resumable(ckpt.stored_config(start)["config"], cfg, workdir)
            start = ckpt.restore(start, model, optimizer, data_iter)
            if not _state_is_finite(model, optimizer):
                ckpt.close()
                raise NonFiniteState(
                    f"{ckpt.directory}/{start} holds inf/NaN parameters or optimizer state "
                    "(written before checkpoints were checked finite); delete it to resume "
                    "from an earlier one, or start a new --workdir"
                )
            print(f"resumed from {ckpt.directory}/{start}", flush=True)
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        summary.update(step=start, checkpoints=str(ckpt.directory), params=int(n_params))
        if stop.requested:
            ckpt.close()
            print(f"SIGTERM before step {start + 1}: nothing new to save", flush=True)
            return summary
        if jax.process_index() == 0:
            print(
                f"{cfg.objective}: {n_params / 1e6:.2f}M parameters, {n_dev} devices, "
                f"{n_proc} processes, batch {cfg.data.batch_size}, window {cfg.data.window} "
                f"at {fs} Hz, steps {start}->{cfg.train.steps}",
                flush=True,
            )
        # The model and optimizer graphs are walked once here, not on every call: nnx.jit's
        # Python traversal cost 14-15 ms per call, 4-5 ms cached (bench/dispatch.py).
        steps_fn = nnx.cached_partial(make_train_steps(mesh, cfg.seed), model, optimizer)
        feed = Feed(data_iter, mesh)
        calls = call_lengths(start, cfg.train.steps, cfg.train.steps_per_call)
        reporter = Reporter(
            workdir,
            total_steps=cfg.train.steps,
            batch_size=cfg.data.batch_size,
            every=cfg.train.log_every,
            start_step=start,
        )
        last = {}
        # (first step, device metrics (n,)) of the calls not yet logged. They are fetched at log
        # steps one call late, and before checkpoints: no other step waits for the device.
        pending: list[tuple[int, dict]] = []
        host_cpu = jax.local_devices(backend="cpu")[0]
        in_flight: list[dict] = []  # metrics of the newest calls dispatched
        last_saved = start  # every checkpoint written is checked finite first

        def where_finite() -> str:
            if last_saved:
                return f"the last checkpoint, {ckpt.directory}/{last_saved}, is finite and intact"
            return "no checkpoint was written"

        def flush_pending(keep: int = 0):
            """Logs every pending step but those of the newest `keep` calls (still running)."""
            nonlocal last
            todo = pending[: len(pending) - keep]
            del pending[: len(todo)]
            for first, metrics in zip([f for f, _ in todo], jax.device_get([m for _, m in todo])):
                n = len(metrics["loss"])
                with jax.default_device(host_cpu):  # not queued behind the running call
                    lrs = np.asarray(schedule(np.arange(first - 1, first - 1 + n)))
                for i in range(n):
                    s = first + i
                    last = reporter.log(s, {k: v[i] for k, v in metrics.items()}, lrs[i])
                    if not math.isfinite(last["loss"]):
                        raise NonFiniteLoss(
                            f"loss is {last['loss']} at step {s}; stopping without saving: "
                            f"{where_finite()}. {_FIX}"
                        )

        def save(step, data_state):
            nonlocal last_saved
            flush_pending()  # never checkpoint a state whose loss was not finite
            # The loss of step s is computed before step s's update: the updated state can
            # overflow while that loss is still finite, so the state itself is checked.
            if not _state_is_finite(model, optimizer):
                raise NonFiniteState(
                    f"parameters or optimizer state are inf/NaN after step {step} (its loss "
                    f"was {last.get('loss')}); not saving them: {where_finite()}. {_FIX}"
                )
            reporter.flush()  # metrics of every step up to this checkpoint, none after
            # The iterator itself is a call ahead (read-ahead): save its state after this step.
            ckpt.save(step, model, optimizer, data_state, cfg, fs)
            last_saved = step

        step = start
        try:
            group = feed.prepare(*calls[0]) if calls else None
            for c in range(len(calls)):
                current = group
                metrics = steps_fn(current.batches, np.int32(current.first_step))
                step = current.first_step + current.n - 1
                if c + 1 < len(calls) and not stop.requested:
                    group = feed.prepare(*calls[c + 1])  # read + transfer while the device runs
                pending.append((current.first_step, metrics))
                in_flight.append(metrics)
                if len(in_flight) > 2:  # bounds the queue (and the batches held on device):
                    jax.block_until_ready(in_flight.pop(0))  # call c - 1 still keeps it busy
                if c == 0:
                    jax.block_until_ready(metrics)
                    reporter.restart_clock(step)
                if (current.first_step - 1) % cfg.train.log_every == 0:
                    flush_pending(keep=1)  # the previous call ended on a log step
                if step % cfg.train.ckpt_every == 0 or step == cfg.train.steps or stop.requested:
                    save(step, current.data_state)
                if stop.requested:
                    print(
                        f"SIGTERM: saved step {step}; rerun the same command to resume", flush=True
                    )
                    break
            flush_pending()
        finally:
            ckpt.wait()
            ckpt.close()
            reporter.close()
    summary.update(step=step, metrics=last, preempted=stop.requested)
    return summary


_FIX = (
    "Lower --config.optim.lr, keep --config.optim.clip_norm > 0, or check the data for "
    "extreme values"
)


def replace(cfg: Config, **sections) -> Config:
    """Convenience for tests and notebooks: replace(cfg, train={"steps": 5})."""
    return dataclasses.replace(
        cfg,
        **{
            k: dataclasses.replace(getattr(cfg, k), **v) if isinstance(v, dict) else v
            for k, v in sections.items()
        },
    )
