"""Beat-SSL: the soft-target loss (NumPy reference, NT-Xent limit, 8 devices == 1, invalid
rows), beat selection, the pretrainer's BatchNorm bookkeeping, a training run and the config."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_beat_ssl as ref
import pytest
from flax import nnx
from jax import P

from acl_jax.config import BeatSslConfig, load_config
from acl_jax.data import pipeline
from acl_jax.objectives import OBJECTIVES, build_pretrainer
from acl_jax.objectives.beat_ssl import BeatSsl, select_beats
from acl_jax.objectives.ntxent import nt_xent_with_metrics
from acl_jax.objectives.soft_contrast import soft_nt_xent
from acl_jax.train.checkpoint import load_pretrainer
from acl_jax.train.loop import replace, train

REPO = Path(__file__).resolve().parent.parent
OPS = ("vcg_rotate_scale", "gaussian_noise")


def _inputs(seed, n=8, dim=6, feat=5, invalid=(), no_feat=()):
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=(2, n, dim)).astype(np.float32)
    f1, f2 = rng.normal(size=(2, n, feat)).astype(np.float32)
    f2 = (f1 + 0.3 * f2).astype(np.float32)  # the two views' features are related
    valid = np.ones(n, bool)
    valid[list(invalid)] = False
    has = np.ones(n, bool)
    has[list(no_feat)] = False
    return z1, z2, f1, f2, valid, has


@jax.jit
def _soft(z1, z2, f1, f2, valid, has, gamma):
    return soft_nt_xent(z1, z2, f1, f2, valid, has, 0.2, gamma)


@pytest.mark.parametrize("gamma", [1.0, 4.0])
def test_soft_loss_matches_numpy_reference(gamma):
    args = _inputs(0, n=8, invalid=(2, 5), no_feat=(1,))
    loss, metrics = _soft(*args, gamma)
    want_loss, want_acc, want_pos = ref.soft_nt_xent(*args, 0.2, gamma)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc"], want_acc, rtol=1e-6)
    np.testing.assert_allclose(metrics["pos_target"], want_pos, rtol=1e-5)
    assert float(metrics["count"]) == 6.0
    assert 0.05 < want_pos < 0.99  # the targets are really soft here


def test_reduces_to_nt_xent_as_targets_become_one_hot():
    z1, z2, f1, f2, valid, has = _inputs(1)
    hard, hard_metrics = nt_xent_with_metrics(z1, z2, 0.2)
    soft, _ = _soft(z1, z2, f1, f2, valid, has, 4.0)
    assert abs(float(soft) - float(hard)) > 1e-2  # soft targets do change the loss
    for gamma in (np.inf, 400.0):
        loss, metrics = _soft(z1, z2, f1, f2, valid, has, gamma)
        np.testing.assert_allclose(loss, hard, rtol=1e-5)
        np.testing.assert_allclose(metrics["acc"], hard_metrics["acc"])
        np.testing.assert_allclose(metrics["pos_target"], 1.0, rtol=1e-6)
    # Without similarity features every target is one-hot as well.
    loss, _ = _soft(z1, z2, f1, f2, valid, np.zeros_like(has), 4.0)
    np.testing.assert_allclose(loss, hard, rtol=1e-5)


MESH = jax.make_mesh((8,), ("data",))


def test_sharded_loss_and_grad_equal_single_device():
    assert jax.device_count() == 8
    # 16 rows with invalid and featureless ones, spread over devices (2 rows each).
    args = _inputs(2, n=16, invalid=(0, 7, 8), no_feat=(3, 12))

    def fn(axis_name):
        def f(z1, z2, f1, f2, valid, has):
            return soft_nt_xent(z1, z2, f1, f2, valid, has, 0.2, 4.0, axis_name)

        return f

    single = jax.jit(jax.value_and_grad(fn(None), argnums=(0, 1), has_aux=True))
    sharded = jax.shard_map(fn("data"), mesh=MESH, in_specs=P("data"), out_specs=P())
    multi = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1), has_aux=True))
    placed = jax.device_put(args, jax.NamedSharding(MESH, P("data")))
    got, want = multi(*placed), single(*args)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
    assert float(jnp.abs(want[1][0]).max()) > 1e-3  # the gradient is not trivially 0


def test_invalid_rows_contribute_nothing():
    z1, z2, f1, f2, valid, has = _inputs(3, n=8, invalid=(1, 6))
    grad = jax.jit(jax.value_and_grad(lambda *a: _soft(*a, 4.0)[0], argnums=(0, 1)))
    loss, (g1, g2) = grad(z1, z2, f1, f2, valid, has)
    assert np.all(g1[~valid] == 0) and np.all(g2[~valid] == 0)
    assert np.abs(g1[valid]).max() > 1e-4
    rng = np.random.default_rng(33)
    for a in (z1, z2, f1, f2):  # garbage in the invalid rows changes nothing
        a[~valid] = 100 * rng.normal(size=a[~valid].shape)
    np.testing.assert_allclose(grad(z1, z2, f1, f2, valid, has)[0], loss, rtol=1e-6)
    # Dropping the invalid rows altogether gives the same loss.
    kept = [a[valid] for a in (z1, z2, f1, f2, valid, has)]
    np.testing.assert_allclose(_soft(*kept, 4.0)[0], loss, rtol=1e-5)


def test_select_beats_keeps_whole_beats_in_time_order():
    rpeaks = jnp.array([[10, 40, 90, 140, 190, -1], [60, 100, -1, -1, -1, -1]], jnp.int32)
    peaks, valid = select_beats(rpeaks, 200, before=25, after=45, count=4)
    np.testing.assert_array_equal(peaks, [[40, 90, 140, -1], [60, 100, -1, -1]])
    np.testing.assert_array_equal(valid, peaks >= 0)


def _tiny(data_dir="unused", steps=10, **model):
    cfg = load_config(REPO / "configs" / "tiny.py")
    return replace(
        cfg,
        objective="beat_ssl",
        data={"dir": str(data_dir), "batch_size": 16, "window": 200},
        augment={"ops": OPS},
        model={"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16, **model},
        optim={"warmup_steps": 3},
        train={"steps": steps, "log_every": 1, "ckpt_every": steps, "async_checkpoint": False},
    )


def _batch(seed, b=8, w=200):
    rng = np.random.default_rng(seed)
    rpeaks = np.tile(np.array([10, 40, 90, 140, 170, -1, -1, -1], np.int32), (b, 1))
    rpeaks[1] = [50, 120, -1, -1, -1, -1, -1, -1]
    rpeaks[2] = -1  # a record without beats
    return {
        "signal": rng.normal(size=(b, 12, w)).astype(np.float32),
        "lead_mask": np.ones((b, 12), np.float32),
        "rpeaks": rpeaks,
        "patient": np.arange(b, dtype=np.int32),
        "record": np.arange(b, dtype=np.int32),
    }


@nnx.jit
def _model_loss(model, batch, keys):
    return model.loss(batch, keys, None)


@nnx.jit
def _window_passes(model, batch, keys):
    v1, v2 = model.views(batch, keys)
    model.encoder(v1.x, v1.lead_mask)
    model.encoder(v2.x, v2.lead_mask)


@pytest.mark.parametrize("lead_wise", [True, False])
def test_pretrainer_ignores_invalid_beats_and_keeps_window_statistics(lead_wise):
    cfg = _tiny(lead_wise=lead_wise)
    model = BeatSsl(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    batch = _batch(0)
    keys = jax.random.split(jax.random.key(1), 8)
    clone = nnx.clone(model)
    loss, metrics = _model_loss(model, batch, keys)
    assert np.isfinite(loss) and float(metrics["beats"]) == 6 * 3 + 2
    # Peaks whose beat leaves the window (10, 170) or past beats_per_window change nothing.
    moved = dict(batch, rpeaks=batch["rpeaks"].copy())
    moved["rpeaks"][0] = [40, 90, 140, -1, -1, -1, -1, -1]
    moved["rpeaks"][3] = [5, 40, 90, 140, 195, -1, -1, -1]
    loss2, _ = _model_loss(nnx.clone(clone), moved, keys)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    # The encoder's running statistics are those of the two window passes only.
    _window_passes(clone, batch, keys)
    got = jax.tree.leaves(nnx.state(model.encoder, nnx.BatchStat))
    want = jax.tree.leaves(nnx.state(clone.encoder, nnx.BatchStat))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_beat_encoder_runs_on_short_beats_with_the_experiment_encoder():
    cfg = load_config(REPO / "configs" / "beat_ssl_ptbxl.py")
    model = BeatSsl(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 12, 250)), jnp.float32)
    peaks = jnp.array([[60, 150], [100, -1]], jnp.int32)
    encode = nnx.jit(lambda m, *a: m.encode_beats(*a))
    h = encode(model, x, jnp.ones((2, 12)), peaks, peaks >= 0)
    assert model.before + model.after == 70 and h.shape == (2, 2, 64)
    assert np.all(np.isfinite(h)) and np.abs(h[0]).min() > 0 and np.all(h[1, 1] == 0)


def test_construction_errors_name_the_fix():
    with pytest.raises(ValueError, match="augment.ops=vcg_rotate_scale,gaussian_noise"):
        BeatSsl(
            replace(_tiny(), augment={"ops": ("gaussian_noise",)}),
            fs=100,
            bn_axis=None,
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(ValueError, match="moves time"):
        BeatSsl(
            replace(_tiny(), augment={"ops": OPS + ("time_shift",)}),
            fs=100,
            bn_axis=None,
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(ValueError, match="data.window"):
        BeatSsl(replace(_tiny(), data={"window": 60}), fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="gamma"):
        BeatSslConfig(gamma=0.0)


def test_ptbxl_config_changes_only_what_the_method_needs():
    base = load_config(REPO / "configs" / "acl_ecg_ptbxl.py")
    cfg = load_config(REPO / "configs" / "beat_ssl_ptbxl.py")
    assert cfg.objective == "beat_ssl" and cfg.augment.ops == OPS
    assert (cfg.model, cfg.optim, cfg.train, cfg.seed, cfg.data) == (
        base.model,
        base.optim,
        base.train,
        base.seed,
        base.data,
    )
    assert dataclasses.replace(cfg, objective=base.objective, augment=base.augment) == base


def test_training_loss_finite_and_falling(prepared_sample, tmp_path):
    """10 steps through the real loop; the loss of a fixed batch with fixed views falls (the
    logged per-step losses are of different batches, whose soft-target entropies differ)."""
    assert OBJECTIVES["beat_ssl"] is BeatSsl  # the registry's entry is what train() builds
    cfg = replace(_tiny(prepared_sample, steps=10), optim={"lr": 3e-2, "warmup_steps": 2})
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 10 and [r["step"] for r in rows] == list(range(1, 11))
    for row in rows:
        assert np.isfinite(row["loss"]) and np.isfinite(row["grad_norm"]) and row["loss"] > 0
        assert row["beats"] > 16 and 0.0 < row["pos_target_beat"] <= 1.0
    data = pipeline.train_dataset(
        cfg.data.dir, "train", window=200, max_beats=cfg.data.max_beats, batch_size=16, seed=5
    )
    batch = next(iter(data))
    keys = jax.random.split(jax.random.key(7), 16)
    initial = build_pretrainer(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(cfg.seed))
    trained, _, _, step = load_pretrainer(tmp_path)
    before, after = _model_loss(initial, batch, keys)[0], _model_loss(trained, batch, keys)[0]
    assert step == 10 and np.isfinite(after) and after < before - 0.2, (before, after)
