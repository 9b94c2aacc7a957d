"""The pretraining loop end to end on the prepared real sample: learning, sharding, resumption."""

import functools
import json
import signal
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import tiny_run
from flax import nnx
from tiny_run import train_process as cli

from acl_jax.data import pipeline
from acl_jax.objectives import build_pretrainer
from acl_jax.objectives.ema import Target
from acl_jax.train.checkpoint import CheckpointNotFound, load_pretrainer
from acl_jax.train.curves import plot_losses
from acl_jax.train.loop import ConfigMismatch, NonFiniteLoss, replace, train
from acl_jax.train.optim import make_optimizer
from acl_jax.train.step import (
    DATA_AXIS,
    make_mesh,
    make_train_step,
    make_train_steps,
    place_model,
    shard_batch,
    shard_batches,
)

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.py"


# The trainer as users run it: asynchronous checkpoints (tiny.py's setting).
tiny = functools.partial(tiny_run.tiny, async_checkpoint=True)


def params_of(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_loss_falls(prepared_sample, tmp_path):
    cfg = replace(tiny(prepared_sample, steps=40, ckpt_every=40), optim={"warmup_steps": 5})
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.2, losses
    for key in ("loss_global", "loss_intra", "loss_inter", "grad_norm", "samples_per_s"):
        assert np.isfinite(rows[-1][key])
    assert summary["step"] == 40 and (tmp_path / "tb").is_dir()
    png = plot_losses(tmp_path)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="metrics.jsonl does not exist"):
        plot_losses(tmp_path / "nope")


# Full-step variants beyond ACL-ECG: the plain global NT-Xent (simclr), a momentum target
# updated inside the step (byol), the beat-level soft-target pretrainer (beat_ssl), and the
# patch transformer with FDA + STDM (core_ecg). Every objective's loss and gradients are also
# checked in its own test module.
FULL_STEP = {
    "acl_ecg": {},
    "simclr": {"objective": "simclr"},
    "byol": {"objective": "byol", "model": {"pred_hidden": 32}},
    "beat_ssl": {"objective": "beat_ssl", "augment": {"ops": ("vcg_rotate_scale",)}},
    "core_ecg": {
        "objective": "core_ecg",
        "augment": {"ops": ()},
        "model": {"arch": "transformer", "lead_wise": False, "widths": (16,), "blocks": (2,)},
    },
}


@pytest.mark.parametrize("name", list(FULL_STEP))
def test_eight_devices_equal_one(prepared_sample, name):
    """A full step (augmentation, sync BatchNorm, loss, AdamW, momentum target) on 8 devices
    == on 1 device, for two steps."""
    cfg = replace(tiny(prepared_sample, steps=10), **FULL_STEP[name])
    fs = pipeline.read_manifest(cfg.data.dir)["fs"]
    host = next(
        iter(
            pipeline.train_dataset(
                cfg.data.dir,
                "train",
                window=cfg.data.window,
                max_beats=cfg.data.max_beats,
                batch_size=cfg.data.batch_size,
                seed=0,
            )
        )
    )
    results = []
    for devices in (jax.devices()[:1], jax.devices()[:8]):
        mesh = make_mesh(devices)
        with jax.set_mesh(mesh):
            model = build_pretrainer(cfg, fs=fs, bn_axis=DATA_AXIS, rngs=nnx.Rngs(0))
            place_model(model, mesh)
            opt = nnx.Optimizer(model, make_optimizer(cfg.optim, 16, 10)[0], wrt=nnx.Param)
            step = make_train_step(mesh, seed=3)
            metrics = [step(model, opt, shard_batch(host, mesh), np.int32(s)) for s in (1, 2)]
            results.append(
                (
                    jax.device_get(metrics),
                    params_of(model),
                    [
                        np.asarray(x)
                        for kind in (nnx.BatchStat, Target)
                        for x in jax.tree.leaves(nnx.state(model, kind))
                    ],
                )
            )
    (m1, p1, s1), (m8, p8, s8) = results
    for a, b in zip(m1, m8):
        assert np.isfinite(a["loss"])
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    assert len(p1) == len(p8) > 0 and len(s1) == len(s8)
    for a, b in zip(p1 + s1, p8 + s8):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    if name in ("acl_ecg", "simclr", "byol", "beat_ssl"):
        assert s1 and any(np.abs(a).max() > 0 for a in s1), "BatchNorm statistics were updated"
    if name == "byol":  # the EMA target moved, identically on 8 devices
        target0 = [
            np.asarray(x)
            for x in jax.tree.leaves(
                nnx.state(build_pretrainer(cfg, fs=fs, bn_axis=None, rngs=nnx.Rngs(0)), Target)
            )
        ]
        assert target0 and any(
            np.abs(a - b).max() > 0 for a, b in zip(target0, s1[-len(target0) :])
        )


def test_steps_per_call_trains_what_single_steps_do(prepared_sample):
    """4 steps as 2 compiled calls of 2 == 4 calls of one step, on 8 devices: each step keys
    its augmentations on its own index, whichever call it runs in."""
    cfg = tiny(prepared_sample, steps=10)
    fs = pipeline.read_manifest(cfg.data.dir)["fs"]
    data = pipeline.train_dataset(
        cfg.data.dir, "train", window=200, max_beats=cfg.data.max_beats, batch_size=16, seed=0
    )
    hosts = [host for host, _ in zip(data, range(4))]
    mesh = make_mesh()
    results = []
    with jax.set_mesh(mesh):
        for per_call in (1, 2):
            model = build_pretrainer(cfg, fs=fs, bn_axis=DATA_AXIS, rngs=nnx.Rngs(0))
            place_model(model, mesh)
            opt = nnx.Optimizer(model, make_optimizer(cfg.optim, 16, 10)[0], wrt=nnx.Param)
            if per_call == 1:
                step = make_train_step(mesh, seed=3)
                losses = [
                    float(step(model, opt, shard_batch(h, mesh), np.int32(s))["loss"])
                    for s, h in enumerate(hosts, 1)
                ]
            else:
                steps = make_train_steps(mesh, seed=3)
                losses = []
                for first in (1, 3):
                    group = {
                        k: np.stack([h[k] for h in hosts[first - 1 : first + 1]]) for k in hosts[0]
                    }
                    metrics = steps(model, opt, shard_batches(group, mesh), np.int32(first))
                    assert metrics["loss"].shape == (2,)
                    losses += [float(x) for x in metrics["loss"]]
            results.append((losses, params_of(model)))
    (l1, p1), (l2, p2) = results
    assert np.all(np.isfinite(l1)) and len(set(l1)) == 4
    # XLA may fuse two steps of one call differently from one: float tolerance, not equality.
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def metric_rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("per_call", [1, 2])
def test_resume_after_kill_is_exact(prepared_sample, tmp_path, per_call):
    """2N steps straight == N steps, SIGKILL, restart, finish: parameters identical, and
    metrics.jsonl holds each step once with the same values (it was flushed only every
    log_every = 10 steps and never truncated, so steps were lost or repeated). The loop reads
    the next call's batches before the checkpoint of the current one is written: the saved
    iterator state must be the one after the saved step, or the resumed run skips a call's
    batches. Also with 2 steps per compiled call (train.steps_per_call)."""
    common = [
        "--config",
        str(TINY),
        f"--config.data.dir={prepared_sample}",
        "--config.data.batch_size=16",
        "--config.model.widths=8,16",
        "--config.model.blocks=1,1",
        "--config.train.steps=12",
        "--config.train.ckpt_every=6",
        "--config.train.async_checkpoint=false",
        f"--config.train.steps_per_call={per_call}",
    ]
    straight = cli(*common, "--workdir", str(tmp_path / "a"))
    out_a = straight.communicate(timeout=300)[0]
    assert straight.returncode == 0, out_a

    killed = cli(*common, "--workdir", str(tmp_path / "b"))
    ckpt6 = tmp_path / "b" / "checkpoints" / "6"
    deadline = time.time() + 300
    while not ckpt6.is_dir() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert ckpt6.is_dir(), "the first checkpoint was written before the kill"
    resumed = cli(*common, "--workdir", str(tmp_path / "b"))
    out_b = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out_b
    assert "resumed from" in out_b

    ma, _, _, sa = load_pretrainer(tmp_path / "a")
    mb, _, _, sb = load_pretrainer(tmp_path / "b")
    assert sa == sb == 12
    for a, b in zip(params_of(ma), params_of(mb)):
        np.testing.assert_array_equal(a, b)
    rows_a, rows_b = metric_rows(tmp_path / "a"), metric_rows(tmp_path / "b")
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a] == list(range(1, 13))
    for ra, rb in zip(rows_a, rows_b):
        assert (ra["loss"], ra["grad_norm"], ra["lr"]) == (rb["loss"], rb["grad_norm"], rb["lr"])


def test_sigterm_saves_and_resumes(prepared_sample, tmp_path):
    args = [
        "--config",
        str(TINY),
        "--workdir",
        str(tmp_path),
        f"--config.data.dir={prepared_sample}",
        "--config.data.batch_size=16",
        "--config.train.steps=100000",
        "--config.train.ckpt_every=100000",
        "--config.train.log_every=1",
    ]
    proc = cli(*args)
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("step 3/"):
            break
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert "SIGTERM: saved step" in out
    saved = int(out.split("SIGTERM: saved step ")[1].split(";")[0])
    assert saved >= 3
    assert (tmp_path / "checkpoints" / str(saved)).is_dir()
    model, cfg, fs, step = load_pretrainer(tmp_path)
    assert step == saved and cfg.train.steps == 100000 and fs == 100


def test_non_finite_loss_keeps_last_good_checkpoint(prepared_sample, tmp_path):
    cfg = replace(
        tiny(prepared_sample, steps=30, ckpt_every=1),
        optim={"lr": 1e9, "clip_norm": 0.0, "warmup_steps": 0},
    )
    with pytest.raises(NonFiniteLoss, match="is finite and intact"):
        train(cfg, tmp_path)
    # Every saved step is finite, BatchNorm statistics included (eval would refuse one that
    # is not).
    model, _, _, step = load_pretrainer(tmp_path)
    assert step >= 1
    assert all(np.isfinite(p).all() for p in params_of(model))


def test_resume_refuses_a_different_config(prepared_sample, tmp_path):
    train(tiny(prepared_sample, steps=2, ckpt_every=2), tmp_path)
    with pytest.raises(ConfigMismatch, match="loss.temperature"):
        train(replace(tiny(prepared_sample, steps=4), loss={"temperature": 0.5}), tmp_path)


def test_resume_accepts_checkpoints_from_before_a_new_field(prepared_sample, tmp_path):
    """A config field added later takes its default when an older checkpoint is resumed."""
    from acl_jax.config import to_dict
    from acl_jax.train.loop import _check_resumable

    cfg = tiny(prepared_sample, steps=4)
    stored = to_dict(cfg)
    del stored["model"]["pred_hidden"]  # as written by a version without the field
    _check_resumable(stored, cfg, tmp_path)
    stored["loss"]["temperature"] = 0.7
    with pytest.raises(ConfigMismatch, match="loss.temperature: 0.7 -> 0.1"):
        _check_resumable(stored, cfg, tmp_path)


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointNotFound, match="no checkpoints"):
        load_pretrainer(tmp_path)


@pytest.mark.slow
def test_two_processes_train_and_checkpoint(prepared_sample, tmp_path):
    """2 processes x 2 emulated devices on localhost: a real multi-host run."""
    port = tiny_run.free_port()
    args = [
        "--config",
        str(TINY),
        "--workdir",
        str(tmp_path),
        f"--config.data.dir={prepared_sample}",
        "--config.data.batch_size=16",
        "--config.model.widths=8,16",
        "--config.model.blocks=1,1",
        "--config.train.steps=6",
        "--config.optim.warmup_steps=2",
        "--config.train.ckpt_every=3",
        f"--coordinator=127.0.0.1:{port}",
        "--num-processes=2",
    ]
    procs = [cli(*args, f"--process-id={i}") for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "4 devices, 2 processes" in outs[0]
    assert "done: step 6" in outs[0]
    model, _, _, step = load_pretrainer(tmp_path)
    assert step == 6 and all(np.isfinite(p).all() for p in params_of(model))
    # Each process stored its own data-iterator state.
    assert len(list((tmp_path / "checkpoints" / "6" / "data_iter").glob("*"))) >= 2
