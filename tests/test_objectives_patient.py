"""Patient-aware baselines CMSC and 3KG: the multi-positive loss against a NumPy reference and
NT-Xent, 8 devices vs 1 (patients spanning devices), the CMSC half split, tiny training runs."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_patient as ref
import pytest
from flax import nnx
from jax import P

from acl_jax.augment import View
from acl_jax.config import load_config
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.cmsc import Cmsc, split_halves
from acl_jax.objectives.multi_positive import multi_positive_nt_xent
from acl_jax.objectives.ntxent import nt_xent_with_metrics
from acl_jax.objectives.threekg import ThreeKG
from acl_jax.train.loop import replace, train

REPO = Path(__file__).resolve().parent.parent
TAU = 0.2


def _embeddings(seed, n=8, dim=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, n, dim)).astype(np.float32)


@jax.jit
def _mp(z1, z2, ids):
    return multi_positive_nt_xent(z1, z2, ids, TAU)


def test_matches_numpy_reference_with_repeated_patients():
    z1, z2 = _embeddings(0)
    ids = np.array([7, 3, 7, 5, 3, 7, 11, 2], np.int32)  # a patient with 3 records, one with 2
    loss, metrics = _mp(z1, z2, ids)
    want_loss, want_acc, want_pos = ref.multi_positive_nt_xent(z1, z2, ids, TAU)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc"], want_acc, rtol=1e-6)
    np.testing.assert_allclose(metrics["positives"], want_pos, rtol=1e-6)
    assert want_pos == pytest.approx((3 * 5 + 2 * 3 + 3 * 1) / 8)


def test_reduces_to_nt_xent_when_all_ids_differ():
    z1, z2 = _embeddings(1)
    ids = np.array([4, 9, 1, 0, 12, 3, 8, 6], np.int32)
    loss, metrics = _mp(z1, z2, ids)
    want, want_metrics = nt_xent_with_metrics(z1, z2, TAU)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(metrics["acc"], want_metrics["acc"])
    assert float(metrics["positives"]) == 1.0
    # ... and differs from it once two examples share a patient.
    shared = ids.copy()
    shared[1] = shared[0]
    assert abs(float(_mp(z1, z2, shared)[0]) - float(want)) > 1e-3


def test_same_patient_records_are_pulled_together():
    z1, z2 = _embeddings(2)
    ids = np.array([0, 0, 1, 2, 3, 4, 5, 6], np.int32)
    far = _mp(z1, z2, ids)[0]
    # Make example 1 (both views) close to example 0: its same-patient positives.
    z1c, z2c = z1.copy(), z2.copy()
    z1c[1] = z1[0] + 0.01 * z1[1]
    z2c[1] = z2[0] + 0.01 * z2[1]
    assert float(_mp(z1c, z2c, ids)[0]) < float(far) - 0.1


MESH = jax.make_mesh((8,), ("data",))


def test_sharded_loss_and_grad_equal_single_device_with_patients_across_devices():
    assert jax.device_count() == 8
    z1, z2 = _embeddings(3, n=16)
    ids = np.arange(16, dtype=np.int32) * 10
    ids[2] = ids[1]  # device 0 example 1 and device 1 example 0 (b = 2 per device)
    ids[13] = ids[14] = ids[5]  # device 2, device 6 and device 7

    def single(a, b, i):
        return multi_positive_nt_xent(a, b, i, TAU)

    def sharded(a, b, i):
        return multi_positive_nt_xent(a, b, i, TAU, axis_name="data")

    sharded = jax.shard_map(sharded, mesh=MESH, in_specs=P("data"), out_specs=P())
    grad = jax.value_and_grad
    (l1, m1), g1 = jax.jit(grad(single, argnums=(0, 1), has_aux=True))(z1, z2, ids)
    placed = jax.device_put((z1, z2, ids), jax.NamedSharding(MESH, P("data")))
    (l8, m8), g8 = jax.jit(grad(sharded, argnums=(0, 1), has_aux=True))(*placed)
    np.testing.assert_allclose(l8, l1, rtol=1e-6)
    for key in ("acc", "positives"):
        np.testing.assert_allclose(m8[key], m1[key], rtol=1e-6)
    for a, b in zip(g8, g1, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(g1[0]).max()) > 1e-3
    want_loss, _, want_pos = ref.multi_positive_nt_xent(z1, z2, ids, TAU)
    np.testing.assert_allclose(l8, want_loss, rtol=1e-5)
    # The cross-device patients were matched: 2 + 3 of 16 examples have extra positives.
    np.testing.assert_allclose(m8["positives"], (11 * 1 + 2 * 3 + 3 * 5) / 16, rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    z1, z2 = _embeddings(4)
    with pytest.raises(ValueError, match="ids must be an integer"):
        multi_positive_nt_xent(z1, z2, np.zeros(8, np.float32), TAU)
    with pytest.raises(ValueError, match="ids must be an integer"):
        multi_positive_nt_xent(z1, z2, np.zeros(5, np.int32), TAU)
    with pytest.raises(ValueError, match=r"\(b, P\)"):
        multi_positive_nt_xent(z1, z2[:, :3], np.zeros(8, np.int32), TAU)


def test_cmsc_half_split_gives_the_two_adjacent_halves_exactly():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 12, 20)).astype(np.float32)
    rpeaks = np.array(
        [[2, 9, 10, 17, -1, -1], [11, 12, 19, -1, -1, -1], [-1, -1, -1, -1, -1, -1]], np.int32
    )
    mask = np.ones((3, 12), np.float32)
    mask[1, 4] = 0.0
    first, second = split_halves(View(jnp.asarray(x), jnp.asarray(rpeaks), jnp.asarray(mask)))
    np.testing.assert_array_equal(first.x, x[..., :10])
    np.testing.assert_array_equal(second.x, x[..., 10:])
    np.testing.assert_array_equal(np.concatenate([first.x, second.x], axis=-1), x)
    np.testing.assert_array_equal(first.rpeaks[0], [2, 9, -1, -1, -1, -1])
    np.testing.assert_array_equal(second.rpeaks[0], [0, 7, -1, -1, -1, -1])
    np.testing.assert_array_equal(first.rpeaks[1], [-1] * 6)
    np.testing.assert_array_equal(second.rpeaks[1], [1, 2, 9, -1, -1, -1])
    for i in range(3):
        (x1, r1), (x2, r2) = ref.split_halves(x[i], rpeaks[i])
        np.testing.assert_array_equal(first.rpeaks[i], r1)
        np.testing.assert_array_equal(second.rpeaks[i], r2)
    np.testing.assert_array_equal(first.lead_mask, mask)
    np.testing.assert_array_equal(second.lead_mask, mask)
    odd = View(jnp.zeros((1, 12, 21)), jnp.full((1, 4), -1, jnp.int32), jnp.ones((1, 12)))
    with pytest.raises(ValueError, match="even"):
        split_halves(odd)


def _tiny(data_dir, objective, *, ops=None, lead_wise=True, window=200):
    cfg = load_config(REPO / "configs" / "tiny.py")
    model = {"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16}
    return replace(
        cfg,
        objective=objective,
        data={"dir": str(data_dir), "batch_size": 16, "window": window},
        augment={} if ops is None else {"ops": ops},
        model={**model, "lead_wise": lead_wise},
        optim={"warmup_steps": 2},  # < train.steps (what the schedule used to clamp it to)
        train={"steps": 3, "log_every": 1, "ckpt_every": 3, "async_checkpoint": False},
    )


def test_construction_errors_name_the_fix():
    cfg = _tiny("unused", "cmsc", window=201)
    with pytest.raises(ValueError, match="data.window"):
        Cmsc(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="augment.ops=vcg_rotate_scale,timeout"):
        ThreeKG(_tiny("unused", "3kg"), fs=100, bn_axis=None, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", ["cmsc", "3kg"])
def test_ptbxl_configs_change_only_what_the_method_needs(name):
    base = load_config(REPO / "configs" / "acl_ecg_ptbxl.py")
    cfg = load_config(REPO / "configs" / f"{name}_ptbxl.py")
    assert cfg.objective == name
    assert (cfg.model, cfg.optim, cfg.train, cfg.seed) == (
        base.model,
        base.optim,
        base.train,
        base.seed,
    )
    assert cfg.data.dir == base.data.dir and cfg.data.batch_size == base.data.batch_size
    assert cfg.loss.temperature == 0.1
    if name == "cmsc":
        assert cfg.data.window == 2 * base.data.window and cfg.augment.ops == ()
    else:
        assert cfg.data.window == base.data.window
        assert cfg.augment.ops == ("vcg_rotate_scale", "timeout")


# Until the lead engineer adds them to acl_jax/objectives/__init__.py, register the two
# objectives for these runs only (setitem is undone after each test).
@pytest.mark.parametrize(
    "name,cls,ops,lead_wise",
    [
        ("cmsc", Cmsc, (), False),  # the paper's CMSC (no augmentation), plain encoder
        ("3kg", ThreeKG, ("vcg_rotate_scale", "timeout"), True),
    ],
)
def test_tiny_training_run(prepared_sample, tmp_path, monkeypatch, name, cls, ops, lead_wise):
    monkeypatch.setitem(OBJECTIVES, name, cls)
    cfg = _tiny(prepared_sample, name, ops=ops, lead_wise=lead_wise)
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 3 and [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert np.isfinite(row["loss"]) and row["loss"] > 0
        assert 0.0 <= row["acc"] <= 1.0 and row["positives"] >= 1.0
        assert np.isfinite(row["grad_norm"]) and row["grad_norm"] > 0
    assert (tmp_path / "checkpoints" / "3").is_dir()
