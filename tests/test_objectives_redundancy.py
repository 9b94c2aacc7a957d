"""Barlow Twins and VICReg: NumPy references, 8-device sharding, behaviour, training smoke."""

import functools
import json
from pathlib import Path

import jax
import numpy as np
import numpy_reference_redundancy as ref
import pytest
from jax import P

from acl_jax.config import BarlowTwinsConfig, VicregConfig, load_config
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.barlow_twins import BarlowTwins, barlow_twins_loss
from acl_jax.objectives.vicreg import VICReg, vicreg_loss
from acl_jax.train.loop import replace, train

TINY = Path(__file__).resolve().parent.parent / "configs" / "tiny.py"

BT = BarlowTwinsConfig(lambd=0.05)  # larger than the paper's so the off-diagonal term shows
VIC = VicregConfig(sim_weight=2.0, var_weight=3.0, cov_weight=0.5)
LOSSES = {
    "barlow_twins": lambda z1, z2, axis_name=None: barlow_twins_loss(z1, z2, BT, axis_name),
    "vicreg": lambda z1, z2, axis_name=None: vicreg_loss(z1, z2, VIC, axis_name),
}


def _inputs(seed, n=12, dim=6):
    """Correlated views with offsets and per-dimension scales around 1 (so the variance hinge
    is active for some dimensions and not others)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    mix = np.eye(dim) + 0.4 * rng.normal(size=(dim, dim))  # cross-dimension correlation
    scale = np.linspace(0.3, 2.0, dim)
    z1 = (base @ mix) * scale + 3.0
    z2 = (base + 0.5 * rng.normal(size=(n, dim))) @ mix * scale - 1.0
    return z1.astype(np.float32), z2.astype(np.float32)


@functools.cache
def _jit(name):
    return jax.jit(LOSSES[name])


def _hadamard(n):
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def test_barlow_twins_matches_numpy_reference():
    z1, z2 = _inputs(0)
    loss, metrics = _jit("barlow_twins")(z1, z2)
    want, terms = ref.barlow_twins(z1, z2, lambd=BT.lambd)
    for name, value in terms.items():
        np.testing.assert_allclose(metrics[name], value, rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    assert terms["loss_off_diag"] * BT.lambd > 1e-3 and terms["loss_on_diag"] > 1e-2


def test_vicreg_matches_numpy_reference():
    z1, z2 = _inputs(1)
    loss, metrics = _jit("vicreg")(z1, z2)
    want, terms = ref.vicreg(z1, z2, sim=2.0, var=3.0, cov=0.5)
    for name, value in terms.items():
        np.testing.assert_allclose(metrics[name], value, rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    assert min(terms.values()) > 1e-2  # every term contributes
    # The default weights are the paper's (25, 25, 1).
    paper_loss, _ = ref.vicreg(z1, z2, sim=25.0, var=25.0, cov=1.0)
    paper = jax.jit(lambda a, b: vicreg_loss(a, b, VicregConfig()))
    np.testing.assert_allclose(paper(z1, z2)[0], paper_loss, rtol=2e-5)


MESH = jax.make_mesh((8,), ("data",))  # explicit axis type, as in the training step


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_loss_metrics_and_grads_equal_single_device(name):
    assert jax.device_count() == 8
    z1, z2 = _inputs(2, n=16, dim=8)
    single = jax.jit(jax.value_and_grad(LOSSES[name], argnums=(0, 1), has_aux=True))
    sharded = jax.shard_map(
        functools.partial(LOSSES[name], axis_name="data"),
        mesh=MESH,
        in_specs=P("data"),
        out_specs=P(),
    )
    multi = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1), has_aux=True))
    got = multi(*jax.device_put((z1, z2), jax.NamedSharding(MESH, P("data"))))
    want = single(z1, z2)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    grad = np.asarray(want[1][0])
    assert np.abs(grad).max() > 1e-3
    # Every device's rows get their own gradient (not just device 0's share).
    assert np.all(np.abs(grad).reshape(8, -1).max(axis=1) > 1e-4)


def test_barlow_twins_ideal_views_and_swapped_dimensions():
    n, dim = 16, 8
    z = _hadamard(n)[:, 1 : dim + 1].astype(np.float32)  # zero-mean, unit-variance, orthogonal
    loss, metrics = _jit("barlow_twins")(z, z)
    assert float(loss) < 1e-6 and float(metrics["corr_diag"]) > 1 - 1e-4
    # Standardization makes it invariant to a positive scale and shift per dimension.
    scaled = z * np.linspace(0.5, 30.0, dim, dtype=np.float32) + 7.0
    np.testing.assert_allclose(_jit("barlow_twins")(scaled, z)[0], loss, atol=1e-6)
    # Second view's dimensions permuted: the diagonal is 0, the redundancy sits off it.
    loss, metrics = _jit("barlow_twins")(z, np.roll(z, 1, axis=1))
    np.testing.assert_allclose(metrics["loss_on_diag"], dim, rtol=1e-4)
    np.testing.assert_allclose(metrics["loss_off_diag"], dim, rtol=1e-4)
    np.testing.assert_allclose(loss, dim + BT.lambd * dim, rtol=1e-4)


def test_vicreg_collapse_is_penalized_and_ideal_views_only_pay_invariance():
    n, dim = 16, 8
    collapsed = np.ones((n, dim), np.float32)
    loss, metrics = _jit("vicreg")(collapsed, collapsed)
    # std = sqrt(0 + eps) = 0.01 in every dimension.
    np.testing.assert_allclose(metrics["loss_var"], 0.99, rtol=1e-6)
    np.testing.assert_allclose(loss, VIC.var_weight * 0.99, rtol=1e-6)
    assert float(metrics["loss_inv"]) == 0.0 and float(metrics["loss_cov"]) == 0.0
    # Orthogonal +-1 columns: unbiased variance 16/15 > 1, no covariance: only the MSE remains.
    z = _hadamard(n)[:, 1 : dim + 1].astype(np.float32)
    z2 = z + 0.1
    loss, metrics = _jit("vicreg")(z, z2)
    assert float(metrics["loss_var"]) == 0.0 and float(metrics["loss_cov"]) < 1e-10
    np.testing.assert_allclose(loss, VIC.sim_weight * 0.01, rtol=1e-5)
    # Duplicated dimensions are redundant: the covariance term sees them.
    dup = np.concatenate([z[:, :4], z[:, :4]], axis=1)
    # 8 off-diagonal entries of (16/15)^2 per view, / d = 8, summed over the two views.
    cov = _jit("vicreg")(dup, dup)[1]["loss_cov"]
    np.testing.assert_allclose(cov, 2 * 8 * (16 / 15) ** 2 / 8, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    z1, z2 = _inputs(3)
    for fn, who, params in (
        (barlow_twins_loss, "barlow_twins_loss", BT),
        (vicreg_loss, "vicreg_loss", VIC),
    ):
        with pytest.raises(ValueError, match=who + r" expects two \(b, P\)"):
            fn(z1, z2[:, :3], params)
        with pytest.raises(ValueError, match=who + ".*at least 2"):
            fn(z1[:1], z2[:1], params)
    # Settings are refused where they are made: the config sections.
    with pytest.raises(ValueError, match=r"barlow_twins\.lambd must be >= 0"):
        BarlowTwinsConfig(lambd=-1.0)
    with pytest.raises(ValueError, match=r"vicreg\.sim_weight=0\.0.*at least one > 0"):
        VicregConfig(sim_weight=0.0, var_weight=0.0, cov_weight=0.0)


@pytest.mark.parametrize(
    ("name", "cls", "lead_wise", "terms"),
    [
        ("barlow_twins", BarlowTwins, True, ("loss_on_diag", "loss_off_diag", "corr_diag")),
        ("vicreg", VICReg, False, ("loss_inv", "loss_var", "loss_cov", "std")),
    ],
)
def test_training_smoke(prepared_sample, tmp_path, monkeypatch, name, cls, lead_wise, terms):
    """A few real steps through the training loop (8 devices, sync BatchNorm, checkpoint)."""
    # Registered here until acl_jax/objectives/__init__.py lists the class (same entry).
    monkeypatch.setitem(OBJECTIVES, name, cls)
    cfg = replace(
        load_config(TINY),
        objective=name,
        data={"dir": str(prepared_sample), "batch_size": 16, "window": 200},
        model={
            "widths": (8, 16),
            "blocks": (1, 1),
            "proj_hidden": 32,
            "proj_dim": 16,
            "lead_wise": lead_wise,
        },
        optim={"warmup_steps": 2},  # < train.steps (what the schedule used to clamp it to)
        train={"steps": 3, "ckpt_every": 3, "log_every": 1},
    )
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and summary["step"] == 3
    for row in rows:
        for key in ("loss", "grad_norm", *terms):
            assert np.isfinite(row[key]), (key, row)
    assert rows[0]["grad_norm"] > 0
    assert (tmp_path / "checkpoints" / "3").is_dir()
