"""ECGEncoder, ResNet1d, MaskedBatchNorm and MLPHead: shapes, mask semantics, devices, modes."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import P

from acl_jax.config import ModelConfig
from acl_jax.leads import region_matrix
from acl_jax.models import (
    BACKBONES,
    ECGEncoder,
    MaskedBatchNorm,
    MLPHead,
    ResNet1d,
    batchnorm,
    register_backbone,
)
from acl_jax.models.resnet1d import max_pool_3_2

SMALL = ModelConfig(widths=(8, 16), blocks=(1, 1), kernel=5)
T = 128


def _batch(b, seed=0, absent=0.3):
    """x (b, 12, T) float32 and a lead mask (b, 12) with about `absent` of the leads missing."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, 12, T)).astype(np.float32)
    mask = (rng.random((b, 12)) > absent).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(mask)


def _stats(model):
    return jax.tree.leaves(nnx.state(model, nnx.BatchStat))


def test_output_shapes_in_both_modes():
    x, mask = _batch(3)
    enc = ECGEncoder(SMALL, rngs=nnx.Rngs(0))
    f = enc(x, mask)
    r = enc.num_regions
    assert (enc.dim, r) == (16, 4)
    assert f.global_.shape == (3, 16) and f.leads.shape == (3, 12, 16)
    assert f.regions.shape == (3, r, 16) and f.region_mask.shape == (3, r)
    assert f.regions_raw is None  # only computed when asked (raw_regions=True)
    assert all(a.dtype == jnp.float32 for a in f if a is not None)
    plain = ECGEncoder(dataclasses.replace(SMALL, lead_wise=False), rngs=nnx.Rngs(0))
    g = plain(x, mask)
    assert g.global_.shape == (3, 16) and g.global_.dtype == jnp.float32
    assert g.leads is None and g.regions is None and g.region_mask is None
    assert plain.num_regions == 0


def test_permuting_the_batch_permutes_the_outputs():
    x, mask = _batch(6, seed=1)
    perm = np.array([4, 2, 0, 5, 1, 3])
    # train mode: batch statistics; raw_regions: every output, regions_raw included
    a = ECGEncoder(SMALL, rngs=nnx.Rngs(0))(x, mask, raw_regions=True)
    b = ECGEncoder(SMALL, rngs=nnx.Rngs(0))(x[perm], mask[perm], raw_regions=True)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_allclose(fa[perm], fb, rtol=1e-4, atol=1e-5)


def test_absent_lead_contents_never_reach_outputs_or_statistics():
    x, mask = _batch(4, seed=2)
    mask = mask.at[0, :].set(1.0).at[1, 6:8].set(0.0)  # example 1 loses the septal region
    absent = mask[..., None] == 0
    zeroed = jnp.where(absent, 0.0, x)
    garbage = jnp.where(absent, 1e3 * jax.random.normal(jax.random.key(9), x.shape), x)
    garbage = garbage.at[2, :, :10].set(
        jnp.where(mask[2, :, None] == 0, jnp.nan, garbage[2, :, :10])
    )
    m1, m2 = ECGEncoder(SMALL, rngs=nnx.Rngs(0)), ECGEncoder(SMALL, rngs=nnx.Rngs(0))
    f1, f2 = m1(zeroed, mask, raw_regions=True), m2(garbage, mask, raw_regions=True)
    for a, b in zip(f1, f2, strict=True):
        assert np.isfinite(np.asarray(b)).all()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for s1, s2 in zip(_stats(m1), _stats(m2)):
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
    assert f1.region_mask[1, 1] == 0 and np.all(f1.regions[1, 1] == 0)
    # A batch without the absent rows at all gives the same statistics (masked BatchNorm).
    present = np.asarray(mask).reshape(-1) > 0
    bb = ResNet1d(1, SMALL.widths, SMALL.blocks, SMALL.kernel, rngs=nnx.Rngs(0))
    bb(x.reshape(-1, 1, T)[present])
    for s_enc, s_bb in zip(_stats(m1.backbone), _stats(bb)):
        np.testing.assert_allclose(s_enc, s_bb, rtol=1e-4, atol=1e-6)


def test_region_and_global_features_are_masked_means_of_lead_features():
    x, mask = _batch(5, seed=3, absent=0.5)
    mask = mask.at[0].set(0.0)  # no lead at all: zeros everywhere, not NaN
    f = ECGEncoder(SMALL, rngs=nnx.Rngs(0))(x, mask)
    leads, m = np.asarray(f.leads), np.asarray(mask)
    assert np.all(leads[m == 0] == 0)
    regions = region_matrix(SMALL.regions)
    for b in range(5):
        for r in range(regions.shape[0]):
            sel = (regions[r] > 0) & (m[b] > 0)
            want = leads[b, sel].mean(0) if sel.any() else np.zeros(16)
            np.testing.assert_allclose(f.regions[b, r], want, rtol=1e-5, atol=1e-6)
            assert f.region_mask[b, r] == float(sel.any())
        want = leads[b, m[b] > 0].mean(0) if m[b].any() else np.zeros(16)
        np.testing.assert_allclose(f.global_[b], want, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_gives_float32_outputs_close_to_float32():
    x, mask = _batch(4, seed=4)
    f32 = ECGEncoder(SMALL, rngs=nnx.Rngs(0))(x, mask, raw_regions=True)
    bf16_cfg = dataclasses.replace(SMALL, dtype="bfloat16")
    bf16 = ECGEncoder(bf16_cfg, rngs=nnx.Rngs(0))(x, mask, raw_regions=True)
    for a, b in zip(f32, bf16, strict=True):
        assert b.dtype == jnp.float32
        # bfloat16 keeps 8 mantissa bits: about 1% error per op, a few % after the network.
        np.testing.assert_allclose(a, b, rtol=0.1, atol=0.05)
    assert np.corrcoef(np.ravel(f32.leads), np.ravel(bf16.leads))[0, 1] > 0.999
    np.testing.assert_array_equal(f32.region_mask, bf16.region_mask)


def test_layouts_share_parameters_and_agree():
    x, _ = _batch(3, seed=5)
    nwc = ResNet1d(12, (8, 16), (1, 1), 5, layout="nwc", rngs=nnx.Rngs(0))
    ncw = ResNet1d(12, (8, 16), (1, 1), 5, layout="ncw", rngs=nnx.Rngs(0))
    np.testing.assert_allclose(nwc(x), ncw(x), rtol=1e-4, atol=1e-5)
    for a, b in zip(_stats(nwc), _stats(ncw)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class _Net(nnx.Module):
    """Encoder plus a region projection head, as a contrastive objective would use them."""

    def __init__(self, bn_axis, rngs):
        self.enc = ECGEncoder(SMALL, bn_axis=bn_axis, rngs=rngs)
        self.head = MLPHead(16, 32, 8, bn_axis=bn_axis, rngs=rngs)

    def __call__(self, x, mask):
        f = self.enc(x, mask)
        return f.global_, self.head(f.regions, f.region_mask)


def test_batchnorm_over_8_devices_equals_one_device_on_the_global_batch():
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("data",))
    x, mask = _batch(16, seed=6, absent=0.4)  # uneven present counts per device
    mask = mask.at[2:4].set(0.0)  # device 1 has no present lead at all

    graphdef, state = nnx.split(_Net("data", nnx.Rngs(0)))

    def local(state, x, mask):
        net = nnx.merge(graphdef, state, copy=True)
        out = net(x, mask)
        return out, nnx.state(net)

    sharded = jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P("data"), P())
        )
    )
    batch = jax.sharding.NamedSharding(mesh, P("data"))
    (g8, z8), state8 = sharded(state, jax.device_put(x, batch), jax.device_put(mask, batch))
    ref = _Net(None, nnx.Rngs(0))
    g1, z1 = ref(x, mask)
    np.testing.assert_allclose(g8, g1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z8, z1, rtol=1e-4, atol=1e-5)
    stats8 = jax.tree.leaves(nnx.filter_state(state8, nnx.BatchStat))
    stats1 = _stats(ref)
    assert len(stats8) == len(stats1) > 0
    assert any(np.abs(s).max() > 1e-3 and np.abs(s - 1).max() > 1e-3 for s in stats1)
    for a, b in zip(stats8, stats1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _bn_case(shape, feat, seed):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(2.0 * rng.standard_normal(shape) + 0.5, jnp.float32)
    w = jnp.asarray((rng.random(shape[0]) > 0.3).astype(np.float32))
    c = shape[feat]
    g, b = jnp.asarray(1 + rng.random(c), jnp.float32), jnp.asarray(rng.random(c), jnp.float32)
    dy = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    return x, w, g, b, dy


@pytest.mark.parametrize(
    "shape,feat,dtype,tol",
    [
        ((24, 30, 5), 2, jnp.float32, 1e-5),  # channels last (nwc), some rows masked
        ((24, 5, 30), 1, jnp.float32, 1e-5),  # channels first (ncw)
        ((24, 30, 5), 2, jnp.bfloat16, 2e-2),  # bfloat16 compute, float32 statistics
    ],
)
def test_batchnorm_hand_written_backward_equals_autodiff(shape, feat, dtype, tol):
    x, w, g, b, dy = _bn_case(shape, feat, seed=11)
    x, dy = x.astype(dtype), dy.astype(dtype)

    def custom(x, g, b):
        return batchnorm.batch_norm_train(x, w, g, b, feat, None, 1e-5, dtype)[0]

    def autodiff(x, g, b):  # the same forward in float32, differentiated by JAX
        return batchnorm._forward(x, w, g, b, feat, None, 1e-5, jnp.float32)[0][0]

    y1, vjp1 = jax.vjp(custom, x, g, b)
    y2, vjp2 = jax.vjp(autodiff, x.astype(jnp.float32), g, b)
    np.testing.assert_allclose(np.asarray(y1, np.float32), y2, rtol=tol, atol=tol)
    (dx, dg, db), refs = vjp1(dy), vjp2(dy.astype(jnp.float32))
    # dx is rounded to the compute dtype; dg and db are float32 sums in either dtype (autodiff
    # of the bfloat16 forward sums in bfloat16: 3-7% off the float32 reference).
    for a, r, t in zip((dx, dg, db), refs, (tol, 1e-5, 1e-5)):
        a, r = np.asarray(a, np.float32), np.asarray(r, np.float32)
        assert np.abs(r).max() > 1e-3
        np.testing.assert_allclose(a, r, rtol=t, atol=t * np.abs(r).max())
    if dtype == jnp.float32:  # masked rows: no gradient through the statistics, dx = dy g r
        mean, var = batchnorm._forward(x, w, g, b, feat, None, 1e-5, dtype)[0][1:3]
        shape_c = [1] * x.ndim
        shape_c[feat] = -1
        scale = (g / np.sqrt(var + 1e-5)).reshape(shape_c)
        off = np.asarray(w) == 0
        assert off.any()
        np.testing.assert_allclose(np.asarray(dx)[off], np.asarray(dy * scale)[off], rtol=1e-5)


def test_batchnorm_backward_over_8_devices_equals_one_device():
    mesh = jax.make_mesh((8,), ("data",))
    x, w, g, b, dy = _bn_case((32, 20, 6), 2, seed=12)
    w = w.at[4:8].set(0.0)  # one device without any present row

    def loss(axis_name, x, w, g, b, dy):
        y = batchnorm.batch_norm_train(x, w, g, b, 2, axis_name, 1e-5, jnp.float32)[0]
        total = jnp.sum(y * dy)
        return total if axis_name is None else jax.lax.psum(total, axis_name)

    sharded = jax.shard_map(
        functools.partial(loss, "data"),
        mesh=mesh,
        in_specs=(P("data"), P("data"), P(), P(), P("data")),
        out_specs=P(),
    )
    rows = jax.sharding.NamedSharding(mesh, P("data"))
    placed = [jax.device_put(a, rows) for a in (x, w)] + [g, b, jax.device_put(dy, rows)]
    grads8 = jax.jit(jax.grad(sharded, argnums=(0, 2, 3)))(*placed)
    grads1 = jax.grad(functools.partial(loss, None), argnums=(0, 2, 3))(x, w, g, b, dy)
    for a, r in zip(grads8, grads1):
        assert np.abs(np.asarray(r)).max() > 1e-3
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


def test_training_step_updates_batch_statistics():
    x, mask = _batch(4, seed=7)
    model = ECGEncoder(SMALL, rngs=nnx.Rngs(0))
    before = np.asarray(model.backbone.stem.bn.mean[...]).copy()

    @nnx.jit
    def step(model, x, mask):
        def loss_fn(model):
            f = model(x, mask)
            return jnp.mean(f.global_**2) + jnp.mean(f.regions**2)

        return nnx.value_and_grad(loss_fn)(model)

    loss, grads = step(model, x, mask)
    assert np.isfinite(float(loss))
    assert np.abs(model.backbone.stem.bn.mean[...] - before).max() > 1e-4
    g = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(a)).all() for a in g)
    assert np.abs(np.asarray(grads["lead_embed"][...])).max() > 0


def test_eval_view_uses_running_statistics():
    x, mask = _batch(4, seed=8)
    model = ECGEncoder(SMALL, rngs=nnx.Rngs(0))
    model(x, mask)  # one train-mode call moves the running statistics
    stats = [np.asarray(s).copy() for s in _stats(model)]
    ev = nnx.view(model, use_running_average=True)
    alone = ev(x[:1], mask[:1]).global_
    together = ev(x, mask).global_
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(stats, _stats(model)):
        np.testing.assert_array_equal(a, b)  # evaluation leaves statistics alone
    train_alone = model(x[:1], mask[:1]).global_
    assert np.abs(train_alone[0] - alone[0]).max() > 1e-3


def test_masked_batchnorm_without_mask_equals_nnx_batchnorm():
    x = 3.0 * jax.random.normal(jax.random.key(0), (6, 10, 5)) + 1.0
    ours, ref = MaskedBatchNorm(5, rngs=nnx.Rngs(0)), nnx.BatchNorm(5, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.mean[...], ref.mean[...], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.var[...], ref.var[...], rtol=1e-5, atol=1e-6)
    empty = MaskedBatchNorm(5, rngs=nnx.Rngs(0))
    empty(x, mask=jnp.zeros(6))
    np.testing.assert_array_equal(empty.var[...], np.ones(5))  # nothing present: unchanged


def test_mlp_head_shapes_and_mask():
    z = jax.random.normal(jax.random.key(1), (3, 4, 16))
    m = jnp.ones((3, 4)).at[0, 1].set(0.0)
    head = MLPHead(16, 32, 8, rngs=nnx.Rngs(0), num_layers=3)
    assert head(z, m).shape == (3, 4, 8) and head(z[:, 0]).shape == (3, 8)
    a = MLPHead(16, 32, 8, rngs=nnx.Rngs(0))(z, m)
    b = MLPHead(16, 32, 8, rngs=nnx.Rngs(0))(z.at[0, 1].set(1e4), m)
    np.testing.assert_allclose(
        np.delete(np.asarray(a).reshape(12, 8), 1, 0),
        np.delete(np.asarray(b).reshape(12, 8), 1, 0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError, match=r"model.arch='vit'.*resnet1d"):
        ECGEncoder(dataclasses.replace(SMALL, arch="vit"), rngs=nnx.Rngs(0))


class _MeanConv(nnx.Module):
    """A deliberately different backbone: one conv, ReLU, time mean."""

    def __init__(self, c_in, dim, rngs):
        self.conv = nnx.Conv(c_in, dim, 3, rngs=rngs)
        self.dim = dim

    def __call__(self, x, mask=None):
        return jnp.mean(jax.nn.relu(self.conv(jnp.swapaxes(x, 1, 2))), axis=1)


def test_registered_backbone_slots_in():
    register_backbone("meanconv", lambda c, cfg, *, bn_axis, rngs: _MeanConv(c, 6, rngs))
    try:
        enc = ECGEncoder(dataclasses.replace(SMALL, arch="meanconv"), rngs=nnx.Rngs(0))
        x, mask = _batch(2, seed=10)
        f = enc(x, mask)
        assert enc.dim == 6 and f.regions.shape == (2, 4, 6)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("meanconv", BACKBONES["resnet1d"])
    finally:
        BACKBONES.pop("meanconv")


def test_default_config_parameter_count():
    enc = nnx.eval_shape(lambda: ECGEncoder(ModelConfig(), rngs=nnx.Rngs(0)))  # no compute
    n = sum(p.size for p in jax.tree.leaves(nnx.state(enc, nnx.Param)))
    # Lead-wise ResNet1d (32, 64, 128, 128) x 1 block, kernel 7: 489,248 parameters.
    assert 450_000 < n < 530_000, n


EIGHT = "I,II,V1,V2,V3,V4,V5,V6"  # the 8 independent leads (LCD's input)


def test_stem_stride_and_kernel_shorten_the_time_axis():
    x, _ = _batch(2, seed=10)
    default = ResNet1d(12, (8, 16), (1, 1), 5, rngs=nnx.Rngs(0))
    fast = ResNet1d(12, (8, 16), (1, 1), 5, stem_stride=8, stem_kernel=17, rngs=nnx.Rngs(0))
    assert (default.downsample, fast.downsample) == (8, 32)
    assert fast.stem.conv.kernel.shape == (17, 12, 8)
    assert default.stem.conv.kernel.shape == (5, 12, 8)  # stem_kernel 0 = kernel
    assert default.features_map(x).shape == (2, T // 8, 16)
    assert fast.features_map(x).shape == (2, T // 32, 16)
    assert fast(x).shape == (2, 16) and np.isfinite(np.asarray(fast(x))).all()
    odd = ResNet1d(12, (8,), (1,), 5, stem_stride=3, rngs=nnx.Rngs(0))
    assert odd.features_map(x[..., :100]).shape == (2, 17, 8)  # ceil(ceil(100 / 3) / 2)
    with pytest.raises(ValueError, match="stem_stride"):
        ResNet1d(12, (8,), (1,), 5, stem_stride=0, rngs=nnx.Rngs(0))
    # The config fields reach the backbone.
    cfg = dataclasses.replace(SMALL, stem_stride=4, stem_kernel=9)
    enc = ECGEncoder(cfg, rngs=nnx.Rngs(0))
    assert enc.backbone.downsample == 16 and enc.backbone.stem.conv.kernel.shape == (9, 1, 8)


def _reduce_window_pool(a):
    return jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 3, 1), (1, 2, 1), "SAME")


def _pool_nwc(a):
    return max_pool_3_2(a, 1)


def test_max_pool_matches_reduce_window_values_and_gradient_after_relu():
    h = jax.nn.relu(jax.random.normal(jax.random.key(3), (4, 25, 3)))
    ref = _reduce_window_pool(h)
    np.testing.assert_array_equal(_pool_nwc(h), ref)
    np.testing.assert_array_equal(max_pool_3_2(jnp.swapaxes(h, 1, 2), 2), ref.swapaxes(1, 2))
    w = jax.random.normal(jax.random.key(4), (4, 13, 3))
    z = jax.random.normal(jax.random.key(5), h.shape)
    ours = jax.grad(lambda z: jnp.sum(_pool_nwc(jax.nn.relu(z)) * w))(z)
    want = jax.grad(lambda z: jnp.sum(_reduce_window_pool(jax.nn.relu(z)) * w))(z)
    assert np.abs(np.asarray(want)).max() > 0
    np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-7)


def _subset_pair(cfg, seed=0):
    """The same weights as a full 12-lead encoder and an 8-lead subset encoder."""
    full = ECGEncoder(cfg, rngs=nnx.Rngs(seed))
    sub = ECGEncoder(dataclasses.replace(cfg, leads=EIGHT), rngs=nnx.Rngs(seed))
    return full, sub


def test_lead_subset_equals_masking_the_other_leads_in_the_full_model():
    x, mask = _batch(6, seed=11, absent=0.25)
    keep = np.isin(np.arange(12), [0, 1, 6, 7, 8, 9, 10, 11]).astype(np.float32)
    full, sub = _subset_pair(SMALL)
    assert sub.subset == (0, 1, 6, 7, 8, 9, 10, 11)
    # Leads outside the subset carry garbage: the subset encoder must never look at them.
    junk = jnp.where(keep[None, :, None] > 0, x, 1e3)
    fs, ff = sub(junk, mask, raw_regions=True), full(x, mask * keep, raw_regions=True)
    assert fs.leads.shape == (6, 12, 16) and fs.regions.shape == (6, 4, 16)
    for a, b in zip(fs, ff, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(fs.leads)[:, keep == 0] == 0)
    # The inferior region (II, III, aVF) keeps II only; others' masks match the full model.
    np.testing.assert_array_equal(fs.region_mask, ff.region_mask)
    for s1, s2 in zip(_stats(sub), _stats(full)):
        np.testing.assert_allclose(s1, s2, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(sub.encoded_mask(mask), np.asarray(mask > 0) * keep)
    # Dense features agree too (eval view: running statistics).
    ms, mf = nnx.view(sub, use_running_average=True), nnx.view(full, use_running_average=True)
    np.testing.assert_allclose(
        ms.features_map(junk, mask), mf.features_map(x, mask * keep), rtol=1e-4, atol=1e-5
    )


def test_lead_subset_gradients_match_and_skip_unencoded_embeddings():
    x, mask = _batch(4, seed=12, absent=0.0)
    keep = np.isin(np.arange(12), [0, 1, 6, 7, 8, 9, 10, 11]).astype(np.float32)
    full, sub = _subset_pair(SMALL, seed=1)

    def grads(model, m):
        def loss_fn(model):
            f = model(x, m)
            return jnp.mean(f.global_**2) + jnp.mean(f.regions**2)

        return nnx.grad(loss_fn)(model)

    gs, gf = grads(sub, mask), grads(full, mask * keep)
    for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(gf)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
    embed = np.asarray(gs["lead_embed"][...])
    assert np.all(embed[keep == 0] == 0) and np.abs(embed[keep > 0]).max() > 0


def test_lead_subset_config_errors_and_parameter_count():
    with pytest.raises(ValueError, match=r"model.leads=.*'V7'"):
        ECGEncoder(dataclasses.replace(SMALL, leads="I,V7"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="twice"):
        ECGEncoder(dataclasses.replace(SMALL, leads="I,i"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="lead_wise"):
        ECGEncoder(dataclasses.replace(SMALL, lead_wise=False, leads=EIGHT), rngs=nnx.Rngs(0))
    full, sub = _subset_pair(SMALL)
    count = [sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param))) for m in (full, sub)]
    assert count[0] == count[1]  # same checkpoint layout: (12, D) lead embedding kept
    assert ECGEncoder(dataclasses.replace(SMALL, leads=" v1 , II"), rngs=nnx.Rngs(0)).subset == (
        1,
        6,
    )


def test_region_embed_off_pools_regions_without_the_lead_embedding():
    """model.region_embed=False: regions are blind to the lead embedding (so regions cannot be
    told apart by it); leads and global still carry it."""
    x, mask = _batch(3, seed=4)
    outs = {}
    for flag in (True, False):
        enc = ECGEncoder(dataclasses.replace(SMALL, region_embed=flag), rngs=nnx.Rngs(0))
        before = enc(x, mask)
        enc.lead_embed[...] = enc.lead_embed[...] + 1.0  # shift every lead's embedding
        after = enc(x, mask)
        outs[flag] = (before, after)
    (on_b, on_a), (off_b, off_a) = outs[True], outs[False]
    valid = np.asarray(off_b.region_mask) > 0
    assert valid.any()
    np.testing.assert_allclose(np.asarray(off_a.regions), np.asarray(off_b.regions), atol=1e-6)
    assert np.abs(np.asarray(on_a.regions - on_b.regions))[valid].min() > 0.5
    assert np.abs(np.asarray(off_a.global_ - off_b.global_)).min() > 0.5
    # Same weights otherwise: region_embed only changes what the regions pool.
    np.testing.assert_allclose(np.asarray(on_b.leads), np.asarray(off_b.leads), rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "sections", "needs_rpeaks", "beat_tokens", "dense"),
    [
        ("acl_ecg", {}, False, False, True),
        ("vicreg", {"model": {"lead_wise": False}}, False, False, True),
        ("clear", {"clear": {"d_model": 8, "depth": 1, "heads": 2}}, True, True, False),
        (
            "core_ecg",
            {"model": {"arch": "transformer", "lead_wise": False, "widths": (8,)}},
            False,
            False,
            True,
        ),
    ],
)
def test_encoders_declare_what_evaluation_asks_of_them(
    name, sections, needs_rpeaks, beat_tokens, dense
):
    """Eval reads the Encoder role (acl_jax.models.roles) instead of probing attributes; every
    objective is a Trainable whose `encoder` plays that role."""
    from acl_jax.config import Config
    from acl_jax.models import Encoder, Trainable
    from acl_jax.objectives import build_pretrainer
    from acl_jax.train.loop import replace

    small = {"widths": (8, 8), "blocks": (1, 1), "proj_hidden": 8, "proj_dim": 8}
    cfg = replace(replace(Config(objective=name), model=small), **sections)
    model = build_pretrainer(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    enc = model.encoder
    assert isinstance(model, Trainable) and isinstance(enc, Encoder)
    assert (enc.needs_rpeaks, enc.beat_tokens, enc.dense) == (needs_rpeaks, beat_tokens, dense)
    assert enc.dim > 0
    if not dense:
        with pytest.raises(ValueError, match="no per-time features"):
            enc.features_map(jnp.zeros((1, 12, 100)), jnp.ones((1, 12)))


def test_raw_regions_are_the_regions_pooled_without_the_lead_embedding():
    """raw_regions=True adds Features.regions_raw (what model.region_embed=False pools) and
    leaves every other output as it was; it is computed only when asked."""
    x, mask = _batch(3, seed=5)
    on = ECGEncoder(SMALL, rngs=nnx.Rngs(0))
    off = ECGEncoder(dataclasses.replace(SMALL, region_embed=False), rngs=nnx.Rngs(0))
    plain, both = on(x, mask), on(x, mask, raw_regions=True)
    assert plain.regions_raw is None
    np.testing.assert_array_equal(np.asarray(both.regions), np.asarray(plain.regions))
    np.testing.assert_array_equal(np.asarray(both.global_), np.asarray(plain.global_))
    np.testing.assert_allclose(np.asarray(both.regions_raw), np.asarray(off(x, mask).regions))
    valid = np.asarray(plain.region_mask) > 0
    assert np.abs(np.asarray(both.regions - both.regions_raw))[valid].min() > 0  # not the same
    with pytest.raises(ValueError, match="raw_regions needs the lead-wise encoder"):
        plain_cfg = dataclasses.replace(SMALL, lead_wise=False)
        ECGEncoder(plain_cfg, rngs=nnx.Rngs(0))(x, mask, raw_regions=True)
