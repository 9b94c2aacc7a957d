"""NT-Xent and ACL-ECG losses: NumPy references, 8-device sharding, gradients, behaviour."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest
from jax import P

from acl_jax.config import AclEcgConfig, LossConfig
from acl_jax.objectives.acl_ecg import acl_ecg_loss
from acl_jax.objectives.ntxent import nt_xent, nt_xent_with_metrics

# within_record: the module docstring's first L_inter, which the NumPy reference implements.
CFG = AclEcgConfig(w_global=1.0, w_intra=0.7, w_inter=0.5, region_objective="within_record")
TAU = 0.2


def _inputs(seed, n=6, regions=4, dim=8):
    rng = np.random.default_rng(seed)
    g1, g2 = rng.normal(size=(2, n, dim)).astype(np.float32)
    r1, r2 = rng.normal(size=(2, n, regions, dim)).astype(np.float32)
    mask = (rng.random((n, regions)) > 0.3).astype(np.float32)
    mask[:, 1] = 0.0  # a region absent from the whole batch
    mask[0] = [1, 0, 0, 0]  # a record with a single present region
    mask[1] = 1.0
    return g1, g2, r1, r2, mask


@functools.cache
def _acl(cfg=CFG, axis_name=None):
    return lambda g1, g2, r1, r2, m: acl_ecg_loss(g1, g2, r1, r2, m, cfg, TAU, axis_name)


@functools.cache
def _acl_jit(cfg=CFG):
    # Compiled once per config: eager dispatch of the loss costs seconds on 2 cores.
    return jax.jit(_acl(cfg))


def test_nt_xent_matches_numpy_reference():
    g1, g2, *_ = _inputs(0)
    loss, metrics = nt_xent_with_metrics(g1, g2, 0.2)
    want_loss, want_acc = ref.nt_xent(g1, g2, 0.2)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc"], want_acc, rtol=1e-6)
    np.testing.assert_allclose(nt_xent(g1, g2, 0.2), want_loss, rtol=1e-5)


def test_acl_ecg_terms_match_numpy_reference():
    g1, g2, r1, r2, mask = _inputs(1)
    loss, metrics = _acl_jit()(g1, g2, r1, r2, mask)
    want, terms = ref.acl_ecg(g1, g2, r1, r2, mask, 0.2, 1.0, 0.7, 0.5)
    for name, value in terms.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc_global"], ref.nt_xent(g1, g2, 0.2)[1], rtol=1e-6)
    np.testing.assert_allclose(metrics["acc_intra"], ref.intra_region(r1, r2, mask, 0.2)[1])
    np.testing.assert_allclose(metrics["acc_inter"], ref.inter_region(r1, r2, mask, 0.2)[1])
    # The masked inputs matter: dropping the mask changes both region terms.
    _, unmasked = _acl_jit()(g1, g2, r1, r2, np.ones_like(mask))
    assert abs(float(unmasked["loss_intra"]) - terms["loss_intra"]) > 1e-3
    assert abs(float(unmasked["loss_inter"]) - terms["loss_inter"]) > 1e-3


MESH = jax.make_mesh((8,), ("data",))  # explicit axis type, as in the training step


def _sharded(fn):
    return jax.shard_map(fn, mesh=MESH, in_specs=P("data"), out_specs=P())


def _put(*arrays):
    # Explicit-mode shard_map takes inputs already laid out as in_specs (as the train step does).
    return jax.device_put(arrays, jax.NamedSharding(MESH, P("data")))


def _assert_trees_close(got, want, atol=1e-6):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)


def test_nt_xent_sharded_loss_and_grad_equal_single_device():
    assert jax.device_count() == 8
    g1, g2, *_ = _inputs(2, n=16)
    single = jax.jit(jax.value_and_grad(lambda a, b: nt_xent(a, b, 0.2), argnums=(0, 1)))
    multi = _sharded(lambda a, b: nt_xent(a, b, 0.2, axis_name="data"))
    multi = jax.jit(jax.value_and_grad(multi, argnums=(0, 1)))
    _assert_trees_close(multi(*_put(g1, g2)), single(g1, g2))
    assert float(jnp.abs(single(g1, g2)[1][0]).max()) > 1e-3  # the gradient is not trivially 0


def test_acl_ecg_sharded_loss_metrics_and_grad_equal_single_device():
    g1, g2, r1, r2, mask = _inputs(3, n=16)
    argnums = (0, 1, 2, 3)
    single = jax.jit(jax.value_and_grad(_acl(), argnums=argnums, has_aux=True))
    multi = jax.jit(
        jax.value_and_grad(_sharded(_acl(axis_name="data")), argnums=argnums, has_aux=True)
    )
    (loss1, metrics1), grads1 = single(g1, g2, r1, r2, mask)
    (loss8, metrics8), grads8 = multi(*_put(g1, g2, r1, r2, mask))
    _assert_trees_close((loss8, metrics8, grads8), (loss1, metrics1, grads1))
    assert set(metrics8) == {
        f"{k}_{t}" for k in ("loss", "acc") for t in ("global", "intra", "inter")
    }


def test_gradients_finite_for_identical_embeddings_and_masked_regions():
    g1, g2, r1, r2, mask = _inputs(4)
    g1[1] = g1[0]
    g2[:] = g1  # both views identical, and two examples identical
    r1[:, 1] = 0.0  # a fully masked region whose pooled embedding is zero
    r2[:, 1] = 0.0
    r2[2] = r1[2]
    loss_and_grads = jax.jit(jax.value_and_grad(lambda *a: _acl()(*a)[0], argnums=(0, 1, 2, 3)))
    loss, grads = loss_and_grads(g1, g2, r1, r2, mask)
    assert np.isfinite(loss)
    for grad in grads:
        assert np.all(np.isfinite(grad))
    # Masked (record, region) slots are neither anchors nor candidates: zero gradient.
    invalid = mask == 0
    assert np.all(grads[2][invalid] == 0) and np.all(grads[3][invalid] == 0)
    assert np.abs(grads[2][~invalid]).max() > 1e-4
    # All regions masked: region terms are 0, still finite gradients.
    loss, grads = loss_and_grads(g1, g2, r1, r2, np.zeros_like(mask))
    assert np.isfinite(loss) and np.all(grads[2] == 0) and np.all(np.isfinite(grads[0]))


def test_loss_decreases_as_positives_become_more_similar():
    g1, _, r1, _, mask = _inputs(5)
    rng = np.random.default_rng(105)  # not seed 5: that stream would repeat g1 itself
    noise_g, noise_r = rng.normal(size=g1.shape), rng.normal(size=r1.shape)
    losses = []
    for scale in (2.0, 1.0, 0.3, 0.05):
        g2 = (g1 + scale * noise_g).astype(np.float32)
        r2 = (r1 + scale * noise_r).astype(np.float32)
        _, metrics = _acl_jit()(g1, g2, r1, r2, mask)
        losses.append([float(metrics[k]) for k in ("loss_global", "loss_intra", "loss_inter")])
    losses = np.array(losses)
    assert np.all(np.diff(losses, axis=0) < 0), losses


def test_zero_weights_drop_terms():
    g1, g2, r1, r2, mask = _inputs(6)
    _, full = _acl_jit()(g1, g2, r1, r2, mask)
    nan_regions = np.full_like(r1, np.nan)
    # Region terms are not traced at all: NaN region inputs cannot reach the loss.
    cfg = dataclasses.replace(CFG, w_intra=0.0, w_inter=0.0)
    loss, metrics = _acl_jit(cfg)(g1, g2, nan_regions, nan_regions, mask)
    assert set(metrics) == {"loss_global", "acc_global"}
    np.testing.assert_allclose(loss, full["loss_global"], rtol=1e-6)
    cfg = dataclasses.replace(CFG, w_global=0.0)
    loss, metrics = _acl_jit(cfg)(np.full_like(g1, np.nan), g2, r1, r2, mask)
    assert "loss_global" not in metrics
    np.testing.assert_allclose(loss, 0.7 * full["loss_intra"] + 0.5 * full["loss_inter"], rtol=1e-5)
    # All weights zero is refused where the settings are made: the config section.
    with pytest.raises(ValueError, match=r"acl_ecg\.w_global=0\.0.*at least one > 0"):
        dataclasses.replace(CFG, w_global=0.0, w_intra=0.0, w_inter=0.0)


def test_temperature_sharpens_the_distribution():
    n = 8
    g1, g2, *_ = _inputs(7, n=n)
    g2 = g1 + 0.1 * g2  # positives are the nearest candidates
    # Very high temperature: uniform over the 2N - 1 candidates.
    np.testing.assert_allclose(nt_xent(g1, g2, 1e5), np.log(2 * n - 1), rtol=1e-4)
    losses = [float(nt_xent(g1, g2, t)) for t in (1.0, 0.5, 0.1, 0.02)]
    assert np.all(np.diff(losses) < 0), losses  # positive already on top: sharper is lower
    assert losses[-1] < 0.05
    # When the positive is not the nearest candidate (a wrong pairing: the true match is a
    # negative), sharpening makes the loss larger.
    wrong = [float(nt_xent(g1, np.roll(g1, 1, axis=0), t)) for t in (1.0, 0.1, 0.02)]
    assert np.all(np.diff(wrong) > 0), wrong
    with pytest.raises(ValueError, match=r"loss\.temperature must be > 0"):
        LossConfig(temperature=0.0)


def test_accuracy_is_one_for_identical_well_separated_views():
    n, regions, dim = 6, 4, 32
    basis = np.eye(dim, dtype=np.float32)
    g = basis[:n]
    r = basis[: n * regions].reshape(n, regions, dim)  # every (record, region) orthogonal
    mask = np.ones((n, regions), np.float32)
    _, metrics = _acl_jit()(g, g, r, r, mask)
    for name in ("acc_global", "acc_intra", "acc_inter"):
        assert float(metrics[name]) == 1.0, name
    _, metrics = nt_xent_with_metrics(g, np.roll(g, 1, axis=0), 0.1)
    assert float(metrics["acc"]) == 0.0  # a mismatched pairing is never top-1


def test_bad_shapes_raise_clear_errors():
    g1, g2, r1, r2, mask = _inputs(8)
    with pytest.raises(ValueError, match=r"\(b, P\)"):
        nt_xent(g1, g2[:, :4], 0.1)
    with pytest.raises(ValueError, match="region_mask"):
        _acl()(g1, g2, r1, r2, mask[:, :2])


# --- L_inter variants (cfg.acl_ecg.region_objective) --------------------------------------------
ALIGN = dataclasses.replace(CFG, region_objective="inter_alignment")
RAW = dataclasses.replace(CFG, region_objective="within_record_raw")


@functools.cache
def _acl_raw(cfg=RAW, axis_name=None):
    # q1, q2: projections of the regions pooled without the lead embedding (L_inter's inputs).
    return lambda g1, g2, r1, r2, m, q1, q2: acl_ecg_loss(
        g1, g2, r1, r2, m, cfg, TAU, axis_name, (q1, q2)
    )


def test_inter_alignment_matches_numpy_reference():
    g1, g2, r1, r2, mask = _inputs(9)
    loss, metrics = _acl_jit(ALIGN)(g1, g2, r1, r2, mask)
    want_inter, want_acc = ref.inter_alignment(r1, r2, mask, TAU)
    np.testing.assert_allclose(metrics["loss_inter"], want_inter, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc_inter"], want_acc, rtol=1e-6)
    want, terms = ref.acl_ecg(g1, g2, r1, r2, mask, TAU, 1.0, 0.7, 0.0)
    np.testing.assert_allclose(loss, want + 0.5 * want_inter, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_intra"], terms["loss_intra"], rtol=1e-5)
    # A different term from the default's, on the same inputs.
    _, default = _acl_jit()(g1, g2, r1, r2, mask)
    assert abs(float(default["loss_inter"]) - want_inter) > 1e-2
    # Aligning a record's regions across views (and keeping records apart) lowers it.
    n, regions, dim = 6, 4, 32
    basis = np.eye(dim, dtype=np.float32)
    records = np.repeat(basis[:n, None], regions, axis=1)  # every region = its record's vector
    g = basis[:n]
    aligned = _acl_jit(ALIGN)(g, g, records, records, np.ones((n, regions), np.float32))[1]
    assert float(aligned["acc_inter"]) == 1.0
    assert float(aligned["loss_inter"]) < float(metrics["loss_inter"])


def test_within_record_raw_puts_only_l_inter_on_the_raw_regions():
    g1, g2, r1, r2, mask = _inputs(10)
    q1, q2 = np.random.default_rng(110).normal(size=(2, *r1.shape)).astype(np.float32)
    loss, metrics = jax.jit(_acl_raw())(g1, g2, r1, r2, mask, q1, q2)
    want, terms = ref.acl_ecg(g1, g2, r1, r2, mask, TAU, 1.0, 0.7, 0.0)
    want_inter, want_acc = ref.inter_region(q1, q2, mask, TAU)
    np.testing.assert_allclose(metrics["loss_inter"], want_inter, rtol=1e-5)
    np.testing.assert_allclose(metrics["acc_inter"], want_acc, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss_intra"], terms["loss_intra"], rtol=1e-5)
    np.testing.assert_allclose(loss, want + 0.5 * want_inter, rtol=1e-5)
    with pytest.raises(ValueError, match="within_record_raw' needs raw"):
        _acl(RAW)(g1, g2, r1, r2, mask)


@pytest.mark.parametrize("variant", ["inter_alignment", "within_record_raw"])
def test_region_objective_sharded_loss_metrics_and_grad_equal_single_device(variant):
    g1, g2, r1, r2, mask = _inputs(11, n=16)
    q1, q2 = r1[:, ::-1] * 0.5 + 0.1, r2 + 0.3  # any other (b, R, P) pair
    cfg = dataclasses.replace(CFG, region_objective=variant)
    args = (g1, g2, r1, r2, mask, q1, q2)
    argnums = (0, 1, 2, 3, 5, 6)
    single = jax.jit(jax.value_and_grad(_acl_raw(cfg), argnums=argnums, has_aux=True))
    multi = _sharded(_acl_raw(cfg, axis_name="data"))
    multi = jax.jit(jax.value_and_grad(multi, argnums=argnums, has_aux=True))
    (loss1, metrics1), grads1 = single(*args)
    (loss8, metrics8), grads8 = multi(*_put(*args))
    _assert_trees_close((loss8, metrics8, grads8), (loss1, metrics1, grads1))
    # Which inputs L_inter reads: r for inter_alignment, q (raw) for within_record_raw.
    used = 3 if variant == "inter_alignment" else 5
    assert np.abs(grads1[argnums.index(used)]).max() > 1e-4
    # Masked (record, region) slots get no gradient through L_inter.
    assert np.all(grads1[argnums.index(used)][mask == 0] == 0)
    if variant == "inter_alignment":
        assert np.all(grads1[argnums.index(5)] == 0)  # q is ignored


def test_region_objective_is_validated_in_one_line():
    with pytest.raises(ValueError, match=r"acl_ecg\.region_objective='cross' is not one of") as e:
        AclEcgConfig(region_objective="cross")
    assert "\n" not in str(e.value) and "inter_alignment" in str(e.value)
    # The default, chosen on validation in issue 15's study (was within_record).
    assert AclEcgConfig() == AclEcgConfig(region_objective="inter_alignment", region_heads=False)


@pytest.mark.parametrize("variant", ["inter_alignment", "within_record", "within_record_raw"])
def test_w_inter_0_turns_the_inter_term_off_whatever_the_variant(variant):
    """w_inter = 0 is the ablation of L_inter under any region_objective (the default's too):
    the loss is the variant-free global + intra loss and no inter metric is reported."""
    g1, g2, r1, r2, mask = _inputs(11)
    q1, q2 = r1[:, ::-1], r2[:, ::-1]  # the raw regions: any other inputs
    off = dataclasses.replace(CFG, region_objective=variant, w_inter=0.0)
    base = dataclasses.replace(CFG, region_objective="within_record", w_inter=0.0)
    loss, metrics = acl_ecg_loss(g1, g2, r1, r2, mask, off, TAU, None, (q1, q2))
    want, _ = acl_ecg_loss(g1, g2, r1, r2, mask, base, TAU, None, (q1, q2))
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    assert "loss_inter" not in metrics and "acc_inter" not in metrics
