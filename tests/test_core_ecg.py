"""CoRe-ECG: FDA on a real record, STDM mask rules, loss vs NumPy, 8 devices == 1, training."""

import json
import warnings
from pathlib import Path

import jax
import numpy as np
import numpy_reference_core_ecg as ref
import pytest
from flax import nnx
from jax import P

from acl_jax.augment import View
from acl_jax.augment.frequency import FdaParams, bin_bands, build_fda, fda, fda_gain
from acl_jax.config import AugmentConfig, Config, CoreEcgConfig, load_config
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.core_ecg import CoreEcg, core_ecg_loss, fda_params, stdm_params
from acl_jax.objectives.stdm import LIMB, PRECORDIAL, stdm_batch
from acl_jax.train.loop import replace, train
from acl_jax.train.step import make_mesh, place_model, shard_batch

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "data" / "sample" / "ptbxl" / "records100" / "00000" / "00042_lr"
TINY = CoreEcgConfig(patch=25, heads=2, decoder_dim=16, decoder_depth=1)
TINY_MODEL = {"arch": "transformer", "lead_wise": False, "widths": (16,), "blocks": (1,)}
STDM = stdm_params(CoreEcgConfig())
# The registry line the lead adds to acl_jax/objectives/__init__.py; a no-op once it is there.
OBJECTIVES.setdefault("core_ecg", CoreEcg)


@pytest.fixture(scope="module")
def record():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb under pandas 3 warns on import
        import wfdb

    sig, fields = wfdb.rdsamp(str(RECORD))
    return np.nan_to_num(sig.T).astype(np.float32), int(fields["fs"])  # (12, 1000) mV, 100 Hz


def _view(x, absent=()):
    mask = np.ones(12, np.float32)
    mask[list(absent)] = 0
    x = np.where(mask[:, None] > 0, x, 0.0).astype(np.float32)
    return View(x, np.full(8, -1, np.int32), mask)


def test_fda_keeps_contract_and_is_deterministic(record):
    x, fs = record
    view = _view(x, absent=(2, 9))
    op = jax.jit(build_fda(AugmentConfig(), fs))
    out, again = op(jax.random.key(0), view), op(jax.random.key(0), view)
    other = op(jax.random.key(1), view)
    assert out.x.shape == x.shape and out.x.dtype == np.float32
    np.testing.assert_array_equal(out.x, again.x)
    assert np.abs(np.asarray(out.x - other.x)).max() > 1e-3
    assert not np.any(np.asarray(out.x)[[2, 9]])  # absent leads stay exactly zero
    np.testing.assert_array_equal(out.lead_mask, view.lead_mask)
    # The op is the documented filter: irFFT(G * rFFT(x)) with G from fda_gain.
    gain = np.asarray(fda_gain(jax.random.key(0), x.shape[-1], fs=fs, params=FdaParams()))
    want = np.fft.irfft(np.fft.rfft(view.x.astype(np.float64)) * gain, n=x.shape[-1])
    np.testing.assert_allclose(out.x, want, atol=2e-5)
    # The gain obeys each band's strength: |G - 1| <= s_b, or the band is dropped (G = 0).
    s, _ = FdaParams().strengths()
    bands = bin_bands(x.shape[-1], float(fs), FdaParams().band_edges_hz)
    assert np.all((np.abs(gain - 1) <= s[bands] + 1e-6) | (gain == 0))


def test_fda_perturbs_important_bands_less_and_keeps_einthoven(record):
    x, fs = record
    view = _view(x)
    params = FdaParams()
    ops = jax.jit(jax.vmap(lambda k: fda(k, view, fs=fs, params=params).x))
    outs = np.asarray(ops(jax.random.split(jax.random.key(0), 64)))
    change = np.mean(
        [ref.band_relative_change(x, y, fs, params.band_edges_hz) for y in outs], axis=0
    )
    # bands: <0.5 Hz, 0.5-5 (P/T), 5-15 (QRS), 15-40, >40 Hz; importance 0.2, 0.9, 0.9, 0.6, 0.1
    assert max(change[1], change[2]) < change[3] < min(change[0], change[4]), change
    assert max(change[1], change[2]) < 0.02 and min(change[0], change[4]) > 0.1, change
    # One filter for all leads keeps the limb-lead laws: with III, aVR, aVL, aVF derived
    # exactly from the recorded I and II, they still hold after FDA (to float32 rounding).
    i, ii = x[0], x[1]
    exact = x.copy()
    exact[2:6] = [ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2]
    out = np.asarray(ops_exact(jax.random.split(jax.random.key(1), 8), _view(exact), fs, params))
    i, ii = out[:, 0], out[:, 1]
    derived = np.stack([ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2], axis=1)
    assert np.abs(out[:, 2:6] - derived).max() < 1e-5 * np.abs(out).max()


def ops_exact(keys, view, fs, params):
    return jax.vmap(lambda k: fda(k, view, fs=fs, params=params).x)(keys)


def test_stdm_rules_hold_for_every_draw():
    n, p = 512, 10
    rng = np.random.default_rng(0)
    lead_mask = (rng.random((n, 12)) > 0.15).astype(np.float32)
    lead_mask[:8] = 1.0
    lead_mask[8, list(PRECORDIAL)] = 0.0  # a limb-only (6-lead) example
    draw = jax.jit(lambda k, m: stdm_batch(k, m, p, **STDM))(
        jax.random.split(jax.random.key(0), n), lead_mask
    )
    masked, whole, spans, keeper = (np.asarray(a) for a in draw)
    present = lead_mask > 0
    for i in range(n):
        assert ref.limb_rule_holds(masked[i], present[i]), i
        composed = ref.stdm_compose(whole[i], spans[i], keeper[i], present[i])
        visible = present[i][:, None] & ~composed
        if visible.any():  # no fallback: the mask is exactly the documented composition
            np.testing.assert_array_equal(masked[i], composed)
        else:  # fallback: one whole column unmasked, everything else as composed
            cols = np.flatnonzero(~masked[i][present[i]].any(0))
            assert len(cols) == 1
            np.testing.assert_array_equal(
                np.delete(masked[i], cols, 1), np.delete(composed, cols, 1)
            )
        assert (present[i][:, None] & ~masked[i]).any()  # the encoder always sees something
        assert not masked[i][~present[i]].any()
        # A unit masked as a whole leaves none of its present leads visible at any time
        # (the limb keeper excepted).
        for u, leads in enumerate([LIMB] + [(v,) for v in PRECORDIAL]):
            if whole[i, u] and visible.any():
                for lead in leads:
                    if present[i, lead] and lead != keeper[i]:
                        assert masked[i, lead].all(), (i, lead)
        assert keeper[i] == -1 or (keeper[i] in LIMB and present[i, keeper[i]])
    # Rates: a precordial token is masked with probability 1 - (1 - 0.2)(1 - 0.5) = 0.6.
    prec = masked[:, list(PRECORDIAL)][present[:, list(PRECORDIAL)]]
    assert abs(prec.mean() - 0.6) < 0.03, prec.mean()
    assert abs((keeper >= 0).mean() - 0.5) < 0.07
    assert abs(whole.mean() - 0.2) < 0.03


def _loss_inputs(seed, b=16, p=4, length=5, d=6):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(2, 2 * b, 12, p, length)).astype(np.float32)
    masked = rng.random((2 * b, 12, p)) < 0.5
    masked[:4] = False  # devices whose shard holds few masked tokens
    z1, z2 = rng.normal(size=(2, b, d)).astype(np.float32)
    return pred, target, masked, z1, z2


def _device_major(a, n_dev=8):
    """(2b, ...) in [view a | view b] order -> per-device [a_d | b_d] blocks, as each device's
    forward stacks its own two views."""
    b = a.shape[0] // 2
    blocks = [
        np.concatenate([x, y]) for x, y in zip(np.split(a[:b], n_dev), np.split(a[b:], n_dev))
    ]
    return np.concatenate(blocks)


def test_loss_matches_numpy():
    pred, target, masked, z1, z2 = _loss_inputs(0)
    core = CoreEcgConfig(w_rec=0.7, w_con=0.3)
    loss, metrics = jax.jit(
        lambda *a: core_ecg_loss(*a, core=core, temperature=0.2, axis_name=None)
    )(pred, target, masked, z1, z2)
    want = ref.core_ecg_loss(pred, target, masked, z1, z2, 0.7, 0.3, 0.2)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_recon"], ref.masked_mse(pred, target, masked), 1e-5)
    np.testing.assert_allclose(metrics["loss_contrast"], ref.nt_xent(z1, z2, 0.2), rtol=1e-5)
    assert metrics["num_masked"] == masked.sum()


def test_loss_eight_devices_equal_one():
    mesh = jax.make_mesh((8,), ("data",))
    pred, target, masked, z1, z2 = _loss_inputs(1)
    core = CoreEcgConfig()

    def one(pr, a, b):
        return core_ecg_loss(pr, target, masked, a, b, core=core, temperature=0.1, axis_name=None)[
            0
        ]

    sharded = jax.shard_map(
        lambda pr, t, m, a, b: core_ecg_loss(
            pr, t, m, a, b, core=core, temperature=0.1, axis_name="data"
        )[0],
        mesh=mesh,
        in_specs=P("data"),
        out_specs=P(),
    )
    args = jax.device_put(
        (_device_major(pred), _device_major(target), _device_major(masked), z1, z2),
        jax.NamedSharding(mesh, P("data")),
    )

    def eight(pr, a, b):
        return sharded(pr, args[1], args[2], a, b)

    l1, g1 = jax.value_and_grad(one, argnums=(0, 1, 2))(pred, z1, z2)
    l8, g8 = jax.jit(jax.value_and_grad(eight, argnums=(0, 1, 2)))(args[0], args[3], args[4])
    np.testing.assert_allclose(l8, l1, rtol=1e-6)
    np.testing.assert_allclose(g8[0], _device_major(np.asarray(g1[0])), rtol=1e-5, atol=1e-8)
    for a, b in zip(g8[1:], g1[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _cfg(**model):
    model = {**TINY_MODEL, "proj_hidden": 16, "proj_dim": 8, **model}
    return replace(Config(core_ecg=TINY), model=model)


def _batch(b=16, t=100, seed=0):
    rng = np.random.default_rng(seed)
    lead_mask = (rng.random((b, 12)) > 0.1).astype(np.float32)
    signal = (0.3 * rng.normal(size=(b, 12, t))).astype(np.float32)
    return {"signal": signal, "lead_mask": lead_mask, "rpeaks": np.full((b, 4), -1, np.int32)}


def _loss_and_grads(devices, batch, keys):
    mesh = make_mesh(devices)
    with jax.set_mesh(mesh):
        model = CoreEcg(_cfg(), fs=100, bn_axis="data", rngs=nnx.Rngs(0))
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
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
    assert all(float(np.abs(a).sum()) > 0 for a in g1)  # every parameter gets a gradient


def test_masked_tokens_never_reach_the_encoder_outputs():
    model = CoreEcg(_cfg(), fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    batch = _batch(b=4)
    keys = jax.random.split(jax.random.key(0), 4)
    masked = np.asarray(
        jax.jit(lambda k, m: stdm_batch(k, m, 4, **STDM).masked)(keys, batch["lead_mask"])
    )
    junk = batch["signal"].copy().reshape(4, 12, 4, 25)
    junk[masked] = 50.0  # only the masked patches change
    run = nnx.jit(lambda m, x: m.encoder.tokens(x, batch["lead_mask"], masked))
    h, visible = run(model, batch["signal"])
    h2, _ = run(model, junk.reshape(4, 12, 100))
    vis = np.asarray(visible)
    assert vis.any() and (~vis).any()
    np.testing.assert_allclose(np.asarray(h2)[vis], np.asarray(h)[vis], rtol=1e-5, atol=1e-6)
    feats = nnx.jit(lambda m: m.encoder(batch["signal"], batch["lead_mask"]))(model)
    assert feats.global_.shape == (4, 16) and feats.leads.shape == (4, 12, 16)


def test_feature_map_for_segmentation():
    """Per-patch features (LUDB segmentation): (B, P, D), mean over P = the pooled feature, and
    an absent lead's content never reaches them."""
    model = CoreEcg(_cfg(), fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    batch = _batch(b=4)
    lead_mask = np.asarray(batch["lead_mask"]).copy()
    lead_mask[:, 3] = 0.0
    run = nnx.jit(lambda m, x, lm: m.encoder.features_map(x, lm))
    fmap = np.asarray(run(model, batch["signal"], lead_mask))
    assert fmap.shape == (4, 4, 16) and np.isfinite(fmap).all()
    feats = nnx.jit(lambda m, x, lm: m.encoder(x, lm))(model, batch["signal"], lead_mask)
    np.testing.assert_allclose(fmap.mean(axis=1), feats.global_, rtol=1e-5, atol=1e-6)
    junk = np.asarray(batch["signal"]).copy()
    junk[:, 3] = 1e3
    np.testing.assert_allclose(run(model, junk, lead_mask), fmap, rtol=1e-5, atol=1e-6)
    assert model.encoder.dense  # segmentation's check_dense passes


def test_config_loads_and_defaults_agree():
    cfg = load_config(REPO / "configs" / "core_ecg_ptbxl.py")
    base = load_config(REPO / "configs" / "acl_ecg_ptbxl.py")
    assert cfg.objective == "core_ecg" and cfg.model.arch == "transformer"
    assert (cfg.data.batch_size, cfg.train.steps, cfg.optim) == (
        base.data.batch_size,
        base.train.steps,
        base.optim,
    )
    assert fda_params(CoreEcgConfig()) == FdaParams()
    with pytest.raises(ValueError, match="model.arch=transformer"):
        CoreEcg(Config(), fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"core_ecg\.span must be an int >= 1"):
        replace(_cfg(), core_ecg={"span": 0})
    with pytest.raises(ValueError, match=r"core_ecg\.lead_prob must be in \[0, 1\]"):
        replace(_cfg(), core_ecg={"lead_prob": 1.5})


def test_training_reconstruction_loss_falls(prepared_sample, tmp_path):
    cfg = load_config(REPO / "configs" / "core_ecg_ptbxl.py")
    cfg = replace(
        cfg,
        data={"dir": str(prepared_sample), "batch_size": 16},
        model={**TINY_MODEL, "widths": (32,), "blocks": (2,), "proj_hidden": 32, "proj_dim": 16},
        optim={"warmup_steps": 2, "lr": 3e-3},
        train={"steps": 16, "log_every": 4, "ckpt_every": 16, "async_checkpoint": False},
    )
    summary = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rec = [r["loss_recon"] for r in rows]
    assert summary["step"] == 16 and np.isfinite([r["loss"] for r in rows]).all()
    assert np.mean(rec[-4:]) < 0.75 * np.mean(rec[:4]), rec
