"""CLEAR objective and HUG head: NumPy references, 8 devices == 1, training, masks."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_clear as ref
import pytest
from flax import nnx
from jax import P

from acl_jax.config import ClearConfig, Config, load_config
from acl_jax.models.hug import HugClassifier, HugHead
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.clear import Clear, reconstruction_loss
from acl_jax.train.loop import replace, train
from acl_jax.train.step import make_mesh, place_model, shard_batch

REPO = Path(__file__).resolve().parent.parent
TINY = Config(clear=ClearConfig(d_model=16, depth=1, heads=2, decoder_dim=16))
# The registry line the lead adds to acl_jax/objectives/__init__.py; a no-op once it is there.
OBJECTIVES.setdefault("clear", Clear)


def _recon_inputs(seed, b=16, k=5, length=7):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(2, b, 12, k, length)).astype(np.float32)
    masked = rng.random((b, 12, k)) < 0.5
    masked[:3] = False  # devices whose shard holds few (or no) masked tokens
    return pred, target, masked


@pytest.mark.parametrize("norm_target", [False, True])
def test_reconstruction_loss_matches_numpy(norm_target):
    pred, target, masked = _recon_inputs(0)
    loss, metrics = jax.jit(reconstruction_loss, static_argnums=(3, 4))(
        pred, target, masked, norm_target, None
    )
    np.testing.assert_allclose(
        loss, ref.reconstruction_loss(pred, target, masked, norm_target), rtol=1e-5
    )
    assert metrics["num_masked"] == masked.sum()
    # Only masked tokens count: changing an unmasked prediction leaves the loss unchanged.
    pred2 = pred.copy()
    pred2[~masked] += 5.0
    np.testing.assert_allclose(
        reconstruction_loss(pred2, target, masked, norm_target, None)[0], loss, rtol=1e-6
    )


def test_reconstruction_loss_eight_devices_equal_one():
    mesh = jax.make_mesh((8,), ("data",))
    pred, target, masked = _recon_inputs(1)

    def one(p):
        return reconstruction_loss(p, target, masked, False, None)[0]

    sharded = jax.shard_map(
        lambda p, t, m: reconstruction_loss(p, t, m, False, "data")[0],
        mesh=mesh,
        in_specs=P("data"),
        out_specs=P(),
    )
    args = jax.device_put((pred, target, masked), jax.NamedSharding(mesh, P("data")))

    def eight(p):
        return sharded(p, args[1], args[2])

    l1, g1 = jax.value_and_grad(one)(pred)
    l8, g8 = jax.jit(jax.value_and_grad(eight))(args[0])
    np.testing.assert_allclose(l8, l1, rtol=1e-6)
    np.testing.assert_allclose(g8, g1, rtol=1e-5, atol=1e-8)
    assert np.abs(np.asarray(g1)[~masked]).max() == 0 and np.abs(np.asarray(g1)).max() > 0


def _batch(b=16, t=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    rpeaks = np.full((b, k), -1, np.int32)
    for i in range(b):
        n = rng.integers(1, k + 1)
        rpeaks[i, :n] = np.sort(rng.choice(np.arange(0, t, 7), n, replace=False))
    lead_mask = (rng.random((b, 12)) > 0.1).astype(np.float32)
    signal = rng.normal(size=(b, 12, t)).astype(np.float32)
    return {"signal": signal, "lead_mask": lead_mask, "rpeaks": rpeaks}


def _loss_and_grads(devices, batch, keys):
    mesh = make_mesh(devices)
    with jax.set_mesh(mesh):
        model = Clear(TINY, fs=100, bn_axis="data", rngs=nnx.Rngs(0))
        place_model(model, mesh)

        @nnx.shard_map(mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P()))
        def sharded(m, b, k):
            return m.loss(b, k, "data")

        @nnx.jit
        def value_and_grad(m, b, k):
            return nnx.value_and_grad(lambda m: sharded(m, b, k), has_aux=True)(m)

        keys = jax.device_put(keys, jax.NamedSharding(mesh, P("data")))
        (loss, metrics), grads = value_and_grad(model, shard_batch(batch, mesh), keys)
        return float(loss), jax.device_get(metrics), jax.tree.leaves(jax.device_get(grads))


def test_pretrainer_loss_and_grads_eight_devices_equal_one():
    batch = _batch()
    keys = jax.random.split(jax.random.key(3), 16)
    l1, m1, g1 = _loss_and_grads(jax.devices()[:1], batch, keys)
    l8, m8, g8 = _loss_and_grads(jax.devices()[:8], batch, keys)
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    assert m1["num_masked"] == m8["num_masked"] > 0
    for a, b in zip(g1, g8, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    assert sum(float(np.abs(a).sum()) for a in g1) > 0


def test_pretrainer_masks_the_configured_fraction():
    batch = _batch(b=4)
    model = Clear(TINY, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(0), 4)
    masked, (pred, target, used) = nnx.jit(
        lambda m, b, k: (m.sample_mask(b, k), m.reconstruct(b, m.sample_mask(b, k)))
    )(model, batch, keys)
    masked = np.asarray(masked)
    valid = (batch["rpeaks"] >= 0)[:, None, :] & (batch["lead_mask"] > 0)[:, :, None]
    np.testing.assert_array_equal(masked.sum((1, 2)), np.floor(0.75 * valid.sum((1, 2)) + 0.5))
    assert not np.any(masked & ~valid)
    assert pred.shape == target.shape == (4, 12, 6, 70)
    np.testing.assert_array_equal(used, masked)


def test_clear_training_loss_falls(prepared_sample, tmp_path):
    cfg = load_config(REPO / "configs" / "clear_ptbxl.py")
    assert cfg.objective == "clear" and cfg.data.window == 500
    cfg = replace(
        cfg,
        data={"dir": str(prepared_sample), "batch_size": 16},
        optim={"warmup_steps": 3, "lr": 2e-3},
        train={"steps": 16, "log_every": 4, "ckpt_every": 16, "async_checkpoint": False},
    )
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss_recon"] for r in rows]
    assert summary["step"] == 16 and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def _hug_inputs(seed=0, b=3, k=5, d=8):
    rng = np.random.default_rng(seed)
    beats = rng.normal(size=(b, 12, k, d)).astype(np.float32)
    valid = rng.random((b, 12, k)) > 0.3
    lead_mask = np.ones((b, 12), np.float32)
    lead_mask[0, [1, 2, 5]] = 0  # inferior region (II, III, aVF) absent
    valid[1, 0] = False  # lead I present but without a valid beat
    return beats, valid, lead_mask


@pytest.mark.parametrize("pool", ["attention", "mean"])
def test_hug_head_excludes_absent_leads_and_groups(pool):
    regions = Config().model.regions
    head = HugHead(8, 5, regions, pool=pool, rngs=nnx.Rngs(0))
    beats, valid, lead_mask = _hug_inputs()
    logits = head(beats, valid, lead_mask)
    groups, group_valid, lead_valid = head.groups(beats, valid, lead_mask)
    assert logits.shape == (3, 5) and groups.shape == (3, 4, 8)
    np.testing.assert_array_equal(group_valid[0], [False, True, True, True])
    assert not np.any(groups[0, 0]) and not lead_valid[1, 0] and lead_valid[1, 1]
    # Invalid beats and absent leads never reach the logits, even as NaN.
    junk = beats.copy()
    junk[~(valid & (lead_mask[..., None] > 0))] = np.nan
    np.testing.assert_allclose(head(junk, valid, lead_mask), logits, rtol=1e-6)
    if pool == "mean":  # lead -> group of example 2, region "septal" (V1, V2): plain means
        lead_means = [beats[2, lead][valid[2, lead]].mean(0) for lead in (6, 7)]
        np.testing.assert_allclose(groups[2, 1], np.mean(lead_means, axis=0), rtol=1e-5)


def test_hug_classifier_trains_head_and_freezes_encoder():
    model = Clear(TINY, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    batch = _batch(b=4)
    batch["labels"] = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    for freeze in (True, False):
        clf = HugClassifier(
            model.encoder, 3, False, Config().model.regions, freeze_encoder=freeze, rngs=nnx.Rngs(1)
        )
        (loss, _), grads = nnx.jit(
            nnx.value_and_grad(lambda m, b: m.loss(b, None, None), has_aux=True)
        )(clf, batch)
        enc = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads["encoder"]))
        head = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads["head"]))
        assert np.isfinite(float(loss)) and head > 0
        assert (enc == 0) == freeze, (freeze, enc)
