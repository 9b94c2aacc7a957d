"""BYOL, SimSiam and MoCo v3: NumPy references, 8 devices == 1, EMA targets as non-Param state,
the MoCo queue, and training / checkpoint-resume through the real loop on the prepared sample."""

import functools
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_momentum as ref
import optax
import pytest
from flax import nnx
from jax import P

from acl_jax.config import load_config
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.byol import BYOL, byol_loss
from acl_jax.objectives.ema import Target, cosine_momentum, ema_update
from acl_jax.objectives.moco import Queue, enqueue, moco_loss
from acl_jax.objectives.simsiam import SimSiam, simsiam_loss
from acl_jax.train.checkpoint import load_pretrainer
from acl_jax.train.loop import replace, train

REPO = Path(__file__).resolve().parent.parent
MESH = jax.make_mesh((8,), ("data",))  # explicit axis type, as in the training step
TAU = 0.2


def _inputs(seed, n=16, dim=8):
    """Four (n, dim) arrays; the second pair is the first plus noise (related positives)."""
    rng = np.random.default_rng(seed)
    a1, a2 = rng.normal(size=(2, n, dim))
    b1, b2 = a1 + 0.5 * rng.normal(size=(n, dim)), a2 + 0.5 * rng.normal(size=(n, dim))
    return tuple(x.astype(np.float32) for x in (a1, a2, b1, b2))


def _queue(seed, size=6, dim=8, filled=4):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(2, size, dim))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[:, filled:] = 0.0  # unfilled slots: must be masked out, not scored as zero vectors
    return q.astype(np.float32), filled


LOSSES = {
    "byol": lambda a, b, c, d, axis=None: byol_loss(a, b, c, d, axis),
    "simsiam": lambda a, b, c, d, axis=None: simsiam_loss(a, b, c, d, axis),
    "moco": lambda a, b, c, d, axis=None: moco_loss(a, b, c, d, TAU, axis),
}


def test_losses_match_numpy_reference():
    p1, p2, t1, t2 = _inputs(0, n=6)
    loss, metrics = jax.jit(LOSSES["byol"])(p1, p2, t1, t2)
    want, want_cos = ref.byol(p1, p2, t1, t2)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["cos"], want_cos, rtol=1e-5)
    loss, _ = jax.jit(LOSSES["simsiam"])(p1, p2, t1, t2)
    np.testing.assert_allclose(loss, ref.simsiam(p1, p2, t1, t2), rtol=1e-5)
    loss, metrics = jax.jit(LOSSES["moco"])(p1, p2, t1, t2)
    want, want_acc = ref.moco(p1, p2, t1, t2, TAU)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc"], want_acc)
    # Queries and keys play different roles (keys are the candidates): swapping them matters.
    assert abs(float(jax.jit(LOSSES["moco"])(t1, t2, p1, p2)[0]) - want) > 1e-3
    # Aligned predictions reach the minima: BYOL 0 (range [0, 8]), SimSiam -1 (range [-1, 1]).
    scaled = 3.0 * p1  # cosine ignores the norm
    np.testing.assert_allclose(jax.jit(LOSSES["byol"])(p1, p2, p2, scaled)[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(jax.jit(LOSSES["simsiam"])(p1, p2, p2, scaled)[0], -1.0, rtol=1e-6)


def test_moco_queue_loss_and_enqueue_match_numpy_reference():
    q1, q2, k1, k2 = _inputs(1, n=5)
    queue, filled = _queue(2)
    loss, metrics = moco_loss(q1, q2, k1, k2, TAU, queue=queue, queue_len=filled)
    want, want_acc = ref.moco(q1, q2, k1, k2, TAU, queue=queue, queue_len=filled)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc"], want_acc)
    # The queue's negatives count: the loss is higher than without them.
    assert float(loss) > ref.moco(q1, q2, k1, k2, TAU)[0] + 1e-3
    new, new_len = enqueue(queue, jnp.int32(filled), k1, k2, None)
    want_queue, want_len = ref.enqueue(queue, filled, k1, k2)
    np.testing.assert_allclose(new, want_queue, atol=1e-6)
    assert int(new_len) == want_len == 6


def _put(*arrays, replicated=False):
    spec = P() if replicated else P("data")
    return jax.device_put(arrays, jax.NamedSharding(MESH, spec))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_loss_and_grads_equal_single_device(name):
    fn = LOSSES[name]
    args = _inputs(3)
    argnums = (0, 1, 2, 3)
    single = jax.jit(jax.value_and_grad(fn, argnums=argnums, has_aux=True))
    sharded = jax.shard_map(
        functools.partial(fn, axis="data"), mesh=MESH, in_specs=P("data"), out_specs=P()
    )
    multi = jax.jit(jax.value_and_grad(sharded, argnums=argnums, has_aux=True))
    (loss1, m1), g1 = single(*args)
    (loss8, m8), g8 = multi(*_put(*args))
    for a, b in zip(jax.tree.leaves((loss8, m8, g8)), jax.tree.leaves((loss1, m1, g1))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(g1[0]).max() > 1e-3  # the online side learns
    assert np.all(g1[2] == 0) and np.all(g1[3] == 0)  # targets / keys are stop-gradient


def test_sharded_moco_queue_equals_single_device():
    q1, q2, k1, k2 = _inputs(4)
    queue, filled = _queue(5)

    def step(q1, q2, k1, k2, queue, queue_len, axis=None):
        loss, metrics = moco_loss(q1, q2, k1, k2, TAU, axis, queue=queue, queue_len=queue_len)
        return loss, (metrics, enqueue(queue, queue_len, k1, k2, axis))

    single = jax.jit(jax.value_and_grad(step, argnums=(0, 1), has_aux=True))
    sharded = jax.shard_map(
        functools.partial(step, axis="data"),
        mesh=MESH,
        in_specs=(P("data"),) * 4 + (P(), P()),
        out_specs=P(),
    )
    multi = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1), has_aux=True))
    out1 = single(q1, q2, k1, k2, queue, jnp.int32(filled))
    out8 = multi(*_put(q1, q2, k1, k2), *_put(queue, jnp.int32(filled), replicated=True))
    for a, b in zip(jax.tree.leaves(out8), jax.tree.leaves(out1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    new_queue = out8[0][1][1][0]
    assert new_queue.sharding.is_fully_replicated  # every device holds the whole queue
    np.testing.assert_allclose(new_queue, ref.enqueue(queue, filled, k1, k2)[0], atol=1e-6)


def test_cosine_momentum_schedule():
    taus = [float(cosine_momentum(s, 10, 0.99)) for s in range(1, 13)]
    np.testing.assert_allclose(taus, [ref.cosine_momentum(s, 10, 0.99) for s in range(1, 13)])
    assert taus[0] == pytest.approx(0.99) and taus[10] == taus[11] == 1.0
    assert np.all(np.diff(taus) >= 0) and taus[5] == pytest.approx(0.995, abs=1e-6)
    with pytest.raises(ValueError, match="train.steps"):
        cosine_momentum(1, 0, 0.99)


def _tiny_cfg(data_dir, objective, **loss):
    cfg = load_config(REPO / "configs" / "tiny.py")
    return replace(
        cfg,
        objective=objective,
        data={"dir": str(data_dir), "batch_size": 16, "window": 200},
        model={"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16},
        loss={"temperature": TAU, **loss},
        optim={"warmup_steps": 1},
        train={"steps": 4, "ckpt_every": 2, "keep": 3, "log_every": 1, "async_checkpoint": False},
    )


def test_targets_are_non_param_state_updated_by_ema():
    cfg = _tiny_cfg("data/prepared/unused", "byol")  # the model alone: no data is read
    model = BYOL(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    params = nnx.state(model.encoder, nnx.Param)
    targets = nnx.state(model.target_encoder, Target)
    assert len(jax.tree.leaves(targets)) == len(jax.tree.leaves(params)) > 0
    for a, b in zip(jax.tree.leaves(targets), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)  # the target starts as a copy
    assert not jax.tree.leaves(nnx.state(model.target_encoder, nnx.Param))
    # The optimizer keeps moments for the online Params only.
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    n_params = len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert len(jax.tree.leaves(nnx.state(opt.opt_state))) == 2 * n_params + 1  # mu, nu, count
    # Move the online weights, then one EMA step with tau = 0.9: xi <- 0.9 xi + 0.1 theta.
    before = [np.asarray(x) for x in jax.tree.leaves(targets)]
    nnx.update(model.encoder, jax.tree.map(lambda x: x + 1.0, params))
    nnx.jit(ema_update)(model.target_encoder, model.encoder, jnp.float32(0.9))
    after = jax.tree.leaves(nnx.state(model.target_encoder, Target))
    online = jax.tree.leaves(nnx.state(model.encoder, nnx.Param))
    for old, new, theta in zip(before, after, online, strict=True):
        np.testing.assert_allclose(new, 0.9 * old + 0.1 * np.asarray(theta), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(new, old + 0.1, rtol=1e-5, atol=1e-6)


def _state(model) -> dict:
    return {path: np.asarray(v.get_value()) for path, v in nnx.to_flat_state(nnx.state(model))}


def _resume_is_exact(cfg, workdir: Path):
    """Trains 4 steps straight; then, from a copy whose step-4 checkpoint is removed, resumes
    from step 2 and finishes. Returns both models after asserting all their state is equal."""
    a, b = workdir / "straight", workdir / "resumed"
    summary = train(cfg, a)
    assert summary["step"] == 4 and np.isfinite(summary["metrics"]["loss"])
    shutil.copytree(a, b)
    shutil.rmtree(b / "checkpoints" / "4")
    train(cfg, b)
    (ma, _, _, step_a), (mb, _, _, step_b) = load_pretrainer(a), load_pretrainer(b)
    assert step_a == step_b == 4
    sa, sb = _state(ma), _state(mb)
    assert sa.keys() == sb.keys()
    for path in sa:
        np.testing.assert_array_equal(sa[path], sb[path], err_msg=str(path))
    return ma


def _differs(a: nnx.Module, b: nnx.Module, kind_a, kind_b) -> bool:
    pairs = zip(jax.tree.leaves(nnx.state(a, kind_a)), jax.tree.leaves(nnx.state(b, kind_b)))
    return any(np.abs(np.asarray(x) - np.asarray(y)).max() > 0 for x, y in pairs)


@pytest.mark.slow
def test_byol_trains_and_resumes_exactly(prepared_sample, tmp_path, monkeypatch):
    monkeypatch.setitem(OBJECTIVES, "byol", BYOL)
    model = _resume_is_exact(_tiny_cfg(prepared_sample, "byol"), tmp_path)
    assert any(isinstance(v, Target) for _, v in nnx.to_flat_state(nnx.state(model)))
    # The EMA moved the target, and it lags behind the online network.
    assert _differs(model.target_encoder, model.encoder, Target, nnx.Param)


@pytest.mark.slow
def test_moco_with_queue_trains_and_resumes_exactly(prepared_sample, tmp_path):
    cfg = replace(
        _tiny_cfg(prepared_sample, "moco"), model={"lead_wise": False}, moco={"queue_size": 40}
    )
    model = _resume_is_exact(cfg, tmp_path)  # the resumed run restarts from a 32-key queue
    assert _differs(model.target_projector, model.projector, Target, nnx.Param)
    assert isinstance(model.queue, Queue) and int(model.queue_len[...]) == 40  # 4 x 16 keys
    norms = np.linalg.norm(np.asarray(model.queue[...]), axis=-1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)  # every slot holds a real unit key


@pytest.mark.slow
def test_simsiam_trains_with_plain_encoder(prepared_sample, tmp_path, monkeypatch):
    monkeypatch.setitem(OBJECTIVES, "simsiam", SimSiam)
    cfg = replace(_tiny_cfg(prepared_sample, "simsiam"), model={"lead_wise": False})
    summary = train(replace(cfg, train={"steps": 3, "ckpt_every": 3}), tmp_path)
    metrics = summary["metrics"]
    assert summary["step"] == 3 and -1.0 <= metrics["loss"] <= 1.0
    assert 0.0 < metrics["z_std"] < 1.0
    model = load_pretrainer(tmp_path)[0]
    assert isinstance(model, SimSiam) and not jax.tree.leaves(nnx.state(model, Target))
