"""DLC and LCD (lead-wise objectives): NumPy references, 8 devices == 1, absent leads, EMA
targets, training smoke and exact checkpoint resumption with the momentum targets; ACL-ECG's
region-objective variants and region heads through the objective."""

import dataclasses
import functools
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_leadwise as ref
import pytest
import tiny_run
from flax import nnx
from jax import P

from acl_jax.config import DlcConfig, LcdConfig, load_config
from acl_jax.objectives import OBJECTIVES
from acl_jax.objectives.acl_ecg import AclEcg
from acl_jax.objectives.dlc import Dlc, dlc_loss
from acl_jax.objectives.ema import Target, cosine_momentum
from acl_jax.objectives.lcd import Lcd, lcd_loss
from acl_jax.train.checkpoint import load_pretrainer
from acl_jax.train.loop import replace, train

TINY = Path(__file__).resolve().parent.parent / "configs" / "tiny.py"
TAU = 0.2
DLC = DlcConfig(w_intra=1.0, w_inter=0.6)
LCD = LcdConfig(lambda_dec=0.7)


def _inputs(seed, n=6, leads=5, dim=8):
    """Per-lead embeddings (two views) and a validity mask with the awkward cases."""
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=(2, n, leads, dim)).astype(np.float32)
    valid = (rng.random((n, leads)) > 0.3).astype(np.float32)
    valid[:, 2] = 0.0  # a lead absent from the whole batch
    valid[0] = [1, 0, 0, 0, 0]  # a record with a single valid lead
    valid[1] = [1, 1, 0, 1, 1]
    valid[-1] = 0.0  # a record with no valid lead
    return z1, z2, valid


def _lcd_inputs(seed, n=6, leads=5, dim=8):
    rng = np.random.default_rng(seed + 1000)
    z1, z2, valid = _inputs(seed, n, leads, dim)
    t1, t2, y1, y2 = rng.normal(size=(4, n, leads, dim)).astype(np.float32)
    y1 += 2.0  # a common offset the global standardization must remove
    return z1, z2, t1, t2, y1, y2, valid


@functools.cache
def _dlc(cfg=DLC, axis_name=None):
    return lambda z1, z2, v: dlc_loss(z1, z2, v, TAU, cfg, axis_name)


@functools.cache
def _lcd(cfg=LCD, axis_name=None):
    return lambda p1, p2, t1, t2, y1, y2, v: lcd_loss(p1, p2, t1, t2, y1, y2, v, cfg, axis_name)


def test_dlc_matches_numpy_reference():
    z1, z2, valid = _inputs(0)
    loss, metrics = jax.jit(_dlc())(z1, z2, valid)
    want, terms = ref.dlc(z1, z2, valid, TAU, DLC.w_intra, DLC.w_inter)
    for name, value in terms.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    # The mask matters: treating every lead as valid changes both terms.
    _, unmasked = jax.jit(_dlc())(z1, z2, np.ones_like(valid))
    assert abs(float(unmasked["loss_intra"]) - terms["loss_intra"]) > 1e-3
    assert abs(float(unmasked["loss_inter"]) - terms["loss_inter"]) > 1e-3
    # A zero weight drops its term (not traced: NaN-free metrics without it).
    _, only_inter = _dlc(dataclasses.replace(DLC, w_intra=0.0))(z1, z2, valid)
    assert set(only_inter) == {"loss_inter", "acc_inter"}
    with pytest.raises(ValueError, match=r"dlc\.w_intra=0\.0.*at least one > 0"):
        DlcConfig(w_intra=0.0, w_inter=0.0)
    with pytest.raises(ValueError, match=r"\(b, L, P\)"):
        _dlc()(z1, z2[:, :3], valid)


def test_lcd_matches_numpy_reference():
    args = _lcd_inputs(1)
    loss, metrics = jax.jit(_lcd())(*args)
    want, terms = ref.lcd(*args, LCD.lambda_dec, LCD.eps)
    for name, value in terms.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    p1, p2, t1, t2, y1, y2, valid = args
    # Identical online projections of all leads of a record are maximally correlated.
    same = np.broadcast_to(y1[:, :1], y1.shape) + 1e-3 * y1
    _, m = jax.jit(_lcd())(p1, p2, t1, t2, same, same, valid)
    assert float(m["loss_dec"]) > 0.9 > 0.5 > float(metrics["loss_dec"])
    # Predictions equal to the other view's targets give zero correlation loss.
    _, m = jax.jit(_lcd())(t2, t1, t1, t2, y1, y2, valid)
    assert abs(float(m["loss_corr"])) < 1e-6
    with pytest.raises(ValueError, match=r"\(b, L, P\)"):
        _lcd()(p1, p2, t1, t2, y1[:, :2], y2, valid)


MESH = jax.make_mesh((8,), ("data",))


def _sharded(fn):
    return jax.shard_map(fn, mesh=MESH, in_specs=P("data"), out_specs=P())


def _put(*arrays):
    return jax.device_put(arrays, jax.NamedSharding(MESH, P("data")))


def _assert_trees_close(got, want, atol=1e-6):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", ["dlc", "lcd"])
def test_eight_devices_equal_one_device(name):
    """Loss, metrics and gradients on 8 emulated devices equal the single-device ones."""
    assert jax.device_count() == 8
    if name == "dlc":
        args, fn, argnums = _inputs(2, n=16), _dlc, (0, 1)
    else:  # predictions and online projections get gradients; targets are stop-gradient
        args, fn, argnums = _lcd_inputs(2, n=16), _lcd, (0, 1, 4, 5)
    single = jax.jit(jax.value_and_grad(fn(), argnums=argnums, has_aux=True))
    multi = jax.jit(
        jax.value_and_grad(_sharded(fn(axis_name="data")), argnums=argnums, has_aux=True)
    )
    want = single(*args)
    _assert_trees_close(multi(*_put(*args)), want)
    assert float(jnp.abs(want[1][-1]).max()) > 1e-3  # the last gradient is not trivially 0


@pytest.mark.parametrize("name", ["dlc", "lcd"])
def test_absent_leads_contribute_nothing(name):
    """Garbage (even NaN) at invalid slots changes neither the loss nor the gradients."""
    if name == "dlc":
        args, fn, argnums = list(_inputs(3)), _dlc(), (0, 1)
    else:
        args, fn, argnums = list(_lcd_inputs(3)), _lcd(), (0, 1, 4, 5)
    valid = args[-1]
    value_and_grad = jax.jit(jax.value_and_grad(fn, argnums=argnums, has_aux=True))
    (loss, metrics), grads = value_and_grad(*args)
    rng = np.random.default_rng(33)
    for fill in ("garbage", "nan"):
        noisy = [a.copy() for a in args[:-1]]
        for a in noisy:
            bad = rng.normal(size=a.shape) * 1e3 if fill == "garbage" else np.nan
            a[valid == 0] = (np.ones_like(a) * bad)[valid == 0]
        got = value_and_grad(*noisy, valid)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(((loss, metrics), grads))):
            np.testing.assert_array_equal(a, b)
    for grad in grads:
        assert np.all(grad[valid == 0] == 0) and np.abs(grad[valid == 1]).max() > 1e-5
    # Changing a valid slot does change the loss (the check above is not vacuous).
    changed = [a.copy() for a in args[:-1]]
    changed[0][1, 0] += 1.0
    assert abs(float(value_and_grad(*changed, valid)[0][0]) - float(loss)) > 1e-5


def _host_batch(seed, b=4, window=200):
    rng = np.random.default_rng(seed)
    mask = np.ones((b, 12), np.float32)
    mask[0, [1, 7, 8]] = 0.0
    mask[2, 3:] = 0.0
    signal = rng.normal(size=(b, 12, window)).astype(np.float32) * mask[..., None]
    rpeaks = np.full((b, 8), -1, np.int32)
    rpeaks[:, :2] = [40, 140]
    return {"signal": signal, "lead_mask": mask, "rpeaks": rpeaks}


@pytest.mark.parametrize("cls", [Dlc, Lcd])
def test_pretrainer_ignores_absent_lead_signals(cls):
    """Through augmentation, encoder, heads and loss: absent leads' samples do not matter."""
    cfg = replace(tiny_run.tiny("unused", log_every=1), objective=cls.__name__.lower())
    model = cls(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    loss_fn = nnx.jit(lambda m, batch, keys: m.loss(batch, keys, None)[0])
    batch = _host_batch(4)
    keys = jax.random.split(jax.random.key(5), 4)
    clean = float(loss_fn(model, batch, keys))
    garbage = dict(batch, signal=batch["signal"].copy())
    absent = batch["lead_mask"] == 0
    garbage["signal"][absent] = 1e3 * np.random.default_rng(6).normal(size=(absent.sum(), 200))
    assert np.isfinite(clean)
    assert float(loss_fn(model, garbage, keys)) == pytest.approx(clean, rel=1e-6, abs=1e-6)
    present = dict(batch, signal=batch["signal"].copy())
    present["signal"][0, 0] *= 3.0
    assert abs(float(loss_fn(model, present, keys)) - clean) > 1e-6


def test_lcd_targets_are_state_not_params_and_follow_the_ema():
    cfg = replace(tiny_run.tiny("unused", log_every=1, steps=10), objective="lcd")
    model = Lcd(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))
    online = [
        np.asarray(x)
        for m in (model.encoder, model.projector)
        for x in jax.tree.leaves(nnx.state(m, nnx.Param))
    ]
    target = [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, Target))]
    assert len(target) == len(online) > 0
    for o, t in zip(online, target):
        np.testing.assert_array_equal(o, t)  # the target starts as a copy
    # Not Params: nnx.grad differentiates Params only, so the targets get no gradient.
    assert not jax.tree.leaves(nnx.state(model.target_encoder, nnx.Param))
    grads = nnx.grad(
        lambda m: sum(jnp.sum(x * x) for x in jax.tree.leaves(nnx.state(m, nnx.Param, Target)))
    )(model)
    kinds = {type(v) for v in jax.tree.leaves(grads, is_leaf=lambda v: isinstance(v, nnx.Variable))}
    assert kinds == {nnx.Param}, kinds
    # Move the online weights, then one EMA update: theta' <- tau theta' + (1 - tau) theta.
    for m in (model.encoder, model.projector):
        nnx.update(m, jax.tree.map(lambda x: x + 1.0, nnx.state(m, nnx.Param)))
    model.update_targets(jnp.asarray(3))
    tau = ref.momentum(3, 10, 0.99)
    np.testing.assert_allclose(cosine_momentum(jnp.asarray(3), 10, 0.99), tau, rtol=1e-6)
    assert 0.99 < tau < 1.0
    after = [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, Target))]
    for o, t, a in zip(online, target, after):
        np.testing.assert_allclose(a, tau * t + (1 - tau) * (o + 1.0), rtol=1e-6, atol=1e-7)


def test_dlc_training_smoke(prepared_sample, tmp_path, monkeypatch):
    monkeypatch.setitem(OBJECTIVES, "dlc", Dlc)  # until acl_jax/objectives lists it
    cfg = replace(
        tiny_run.tiny(prepared_sample, log_every=1, steps=3, ckpt_every=3), objective="dlc"
    )
    summary = train(cfg, tmp_path)
    metrics = summary["metrics"]
    assert summary["step"] == 3
    for key in ("loss", "loss_intra", "acc_intra", "loss_inter", "acc_inter"):
        assert np.isfinite(metrics[key]), key
    # At initialization the losses are near chance: positive and well below log(#candidates).
    assert 0 < metrics["loss_inter"] < np.log(23) + 1


def _full_state(model):
    leaves = jax.tree.leaves_with_path(nnx.state(model))
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in leaves}


def test_lcd_training_and_exact_resume_with_targets(prepared_sample, tmp_path, monkeypatch, capsys):
    """4 steps straight == 2 steps, restore, 2 more: every model variable, targets included."""
    monkeypatch.setitem(OBJECTIVES, "lcd", Lcd)  # until acl_jax/objectives lists it
    cfg = replace(
        tiny_run.tiny(prepared_sample, log_every=1, steps=4, ckpt_every=2, keep=3), objective="lcd"
    )
    summary = train(cfg, tmp_path)
    assert summary["step"] == 4
    for key in ("loss", "loss_corr", "loss_dec"):
        assert np.isfinite(summary["metrics"][key]), key
    straight, *_ = load_pretrainer(tmp_path)
    want = _full_state(straight)
    # Drop the final checkpoint: the rerun resumes from step 2 and redoes steps 3 and 4.
    shutil.rmtree(tmp_path / "checkpoints" / "4")
    capsys.readouterr()
    train(cfg, tmp_path)
    assert f"resumed from {tmp_path / 'checkpoints'}/2" in capsys.readouterr().out
    resumed, *_ = load_pretrainer(tmp_path)
    got = _full_state(resumed)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    # The round trip covered real momentum targets: they moved, and differ from online weights.
    targets = jax.tree.leaves(nnx.state(resumed.target_encoder, Target))
    online = jax.tree.leaves(nnx.state(resumed.encoder, nnx.Param))
    fresh = jax.tree.leaves(
        nnx.state(Lcd(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0)).target_encoder, Target)
    )
    assert any(np.abs(np.asarray(t) - np.asarray(f)).max() > 0 for t, f in zip(targets, fresh))
    assert any(np.abs(np.asarray(t) - np.asarray(o)).max() > 0 for t, o in zip(targets, online))


@pytest.mark.parametrize("name", ["dlc", "lcd"])
def test_ptbxl_configs_keep_the_acl_ecg_budget(name):
    configs = TINY.parent
    cfg = load_config(configs / f"{name}_ptbxl.py")
    base = load_config(configs / "acl_ecg_ptbxl.py")
    assert cfg.objective == name
    same = dataclasses.replace(cfg, objective=base.objective, loss=base.loss, dlc=base.dlc)
    assert same == base, "only the objective and its loss weights differ"
    assert cfg.loss.temperature == base.loss.temperature


def _acl_ecg_model(**acl_ecg):
    cfg = tiny_run.tiny("unused", log_every=1)
    return AclEcg(
        replace(cfg, objective="acl_ecg", acl_ecg=acl_ecg), fs=100, bn_axis=None, rngs=nnx.Rngs(0)
    )


def test_acl_ecg_within_record_raw_keeps_l_inter_blind_to_the_lead_embedding():
    """region_objective=within_record_raw: L_inter no longer moves with the learned lead
    embedding (the default's does), while L_intra still sees it."""
    batch, keys = _host_batch(7), jax.random.split(jax.random.key(8), 4)
    metrics = nnx.jit(lambda m: m.loss(batch, keys, None)[1])
    shift = 0.5 * np.random.default_rng(9).normal(size=(12, 16)).astype(np.float32)
    out = {}
    for variant in ("within_record", "within_record_raw"):
        model = _acl_ecg_model(region_objective=variant)
        before = metrics(model)
        model.encoder.lead_embed[...] = model.encoder.lead_embed[...] + shift
        out[variant] = (before, metrics(model))
    (d_before, d_after), (r_before, r_after) = out["within_record"], out["within_record_raw"]
    assert float(r_after["loss_inter"]) == pytest.approx(float(r_before["loss_inter"]), abs=1e-6)
    assert abs(float(r_after["loss_intra"]) - float(r_before["loss_intra"])) > 1e-3
    assert abs(float(d_after["loss_inter"]) - float(d_before["loss_inter"])) > 1e-3
    # The same weights (same seed) and the same L_intra: only L_inter's input differs.
    assert float(r_before["loss_intra"]) == pytest.approx(float(d_before["loss_intra"]), rel=1e-6)
    assert abs(float(r_before["loss_inter"]) - float(d_before["loss_inter"])) > 1e-3
    with pytest.raises(ValueError, match="model.region_embed=false: every region is already"):
        cfg = tiny_run.tiny("unused")
        cfg = replace(
            cfg, model={"region_embed": False}, acl_ecg={"region_objective": "within_record_raw"}
        )
        AclEcg(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0))


def test_acl_ecg_region_heads_give_each_region_its_own_head():
    batch, keys = _host_batch(10), jax.random.split(jax.random.key(11), 4)
    shared, own = (
        _acl_ecg_model(),
        _acl_ecg_model(region_heads=True, region_objective="inter_alignment"),
    )
    assert not hasattr(shared, "region_heads") and not hasattr(own, "region_head")
    regions = own.encoder.num_regions
    assert len(own.region_heads) == regions == 4

    def count(m):
        return sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))

    head = count(shared.region_head)
    assert count(own) == count(shared) + (regions - 1) * head
    loss, metrics = nnx.jit(lambda m: m.loss(batch, keys, None))(own)
    assert np.isfinite(float(loss)) and {"loss_inter", "acc_inter"} <= set(metrics)
    # Head k projects region k: changing head 2 changes only region 2's projections.
    f = own.encoder(jnp.asarray(batch["signal"][..., :200]), jnp.asarray(batch["lead_mask"]))
    before = np.asarray(own.project_regions(f.regions, f.region_mask))
    own.region_heads[2].out.bias[...] = own.region_heads[2].out.bias[...] + 1.0
    after = np.asarray(own.project_regions(f.regions, f.region_mask))
    np.testing.assert_array_equal(np.delete(after, 2, axis=1), np.delete(before, 2, axis=1))
    np.testing.assert_allclose(after[:, 2] - before[:, 2], 1.0, rtol=1e-5)
