"""Tests for acl_jax.augment: contracts of every op, cycle masking, peak tracking, 3KG, batching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import wfdb
from scipy.signal import find_peaks

from acl_jax.augment import (
    REGISTRY,
    View,
    augment_batch,
    cycle_mask,
    cycle_mask_samples,
    lead_dropout,
    make_augment,
    scale_crop,
    time_shift,
    vcg_rotate_scale,
    vcg_to_ecg,
    vcg_transform,
)
from acl_jax.augment.plot import plot_augmentations
from acl_jax.config import AugmentConfig
from acl_jax.leads import LEAD_INDEX, canonical_lead

FS = 100
W = 128
K = 8
RECORD = Path(__file__).parent.parent / "data/sample/ptbxl/records100/00000/00042_lr"


def random_rpeaks(rng: np.random.Generator, width: int = W, k: int = K) -> np.ndarray:
    """(k,) int32: 0..k distinct sorted peaks, -1 padded."""
    n = int(rng.integers(0, k + 1))
    peaks = np.sort(rng.choice(width, size=n, replace=False))
    return np.concatenate([peaks, -np.ones(k - n, np.int64)]).astype(np.int32)


def random_view(seed: int = 0, absent: tuple[int, ...] = ()) -> View:
    rng = np.random.default_rng(seed)
    mask = np.ones(12, np.float32)
    mask[list(absent)] = 0.0
    x = rng.standard_normal((12, W)).astype(np.float32) * mask[:, None]
    rpeaks = np.array([10, 30, 52, 75, 99, 120, -1, -1], np.int32)
    return View(jnp.asarray(x), jnp.asarray(rpeaks), jnp.asarray(mask))


def spike_view(rpeaks: np.ndarray) -> View:
    """Zero signal with a 1 mV spike on every lead at each valid R-peak."""
    x = np.zeros((12, W), np.float32)
    x[:, rpeaks[rpeaks >= 0]] = 1.0
    return View(jnp.asarray(x), jnp.asarray(rpeaks), jnp.ones(12, jnp.float32))


def single_op(name: str, **overrides) -> AugmentConfig:
    return dataclasses.replace(AugmentConfig(), ops=(name,), **overrides)


def assert_packed(rpeaks: np.ndarray) -> None:
    valid = rpeaks[rpeaks >= 0]
    n = len(valid)
    assert np.all(rpeaks[n:] == -1), rpeaks
    assert np.all(np.diff(valid) >= 0), rpeaks
    assert np.all(valid < W), rpeaks


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_contract(name):
    """Shapes/dtypes kept, deterministic per key, keys matter, jit == eager, absent leads zero."""
    fn = make_augment(single_op(name), FS)
    absent = (3, 4)  # aVR, aVL: not among 3KG's independent leads, so every op acts
    view = random_view(0, absent=absent)
    key = jax.random.key(1)
    jitted = jax.jit(fn)
    out = jitted(key, view)
    for a, b in zip(out, view):
        assert a.shape == b.shape and a.dtype == b.dtype
    again = jitted(key, view)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    eager = fn(key, view)
    for a, b in zip(out, eager):
        # Fused multiply-adds move float32 sample positions (~W * 1e-7) between modes.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    others = [jitted(jax.random.key(i), view).x for i in range(2, 8)]
    assert any(not np.array_equal(out.x, o) for o in others), f"{name} ignores its key"
    assert_packed(np.asarray(out.rpeaks))
    for o in [out.x, *others]:
        np.testing.assert_array_equal(np.asarray(o)[list(absent)], 0.0)
    assert np.all(np.asarray(out.lead_mask)[list(absent)] == 0.0)


def cycles_of(rpeaks: np.ndarray) -> list[tuple[int, int]]:
    valid = rpeaks[rpeaks >= 0]
    return list(zip(valid[:-1], valid[1:]))


@pytest.mark.parametrize("prob,max_cycles", [(0.5, 2), (1.0, 3), (0.0, 2), (1.0, 0)])
def test_cycle_mask_masks_whole_cycles_only(prob, max_cycles):
    rng = np.random.default_rng(7)
    mask_fn = jax.jit(lambda k, r: cycle_mask_samples(k, r, W, prob=prob, max_cycles=max_cycles))
    for i in range(40):
        rpeaks = random_rpeaks(rng)
        mask = np.asarray(mask_fn(jax.random.key(i), jnp.asarray(rpeaks)))
        cycles = cycles_of(rpeaks)
        masked = 0
        covered = np.zeros(W, bool)
        for a, b in cycles:
            seg = mask[a:b]
            assert seg.all() or not seg.any(), (rpeaks, mask)  # whole cycle or nothing
            masked += int(seg.all() and b > a)
            covered[a:b] = True
        assert not mask[~covered].any(), "masked outside whole cycles (e.g. window edges)"
        assert masked <= max_cycles
        if prob == 1.0:
            assert masked == min(max_cycles, len(cycles))
        if prob == 0.0:
            assert not mask.any()


def test_cycle_mask_zeroes_exactly_the_sample_mask():
    view = random_view(3)
    key = jax.random.key(5)
    out = cycle_mask(key, view, prob=1.0, max_cycles=2)
    mask = np.asarray(cycle_mask_samples(key, view.rpeaks, W, prob=1.0, max_cycles=2))
    assert mask.sum() > 0
    np.testing.assert_array_equal(np.asarray(out.x)[:, mask], 0.0)
    np.testing.assert_array_equal(np.asarray(out.x)[:, ~mask], np.asarray(view.x)[:, ~mask])
    np.testing.assert_array_equal(out.rpeaks, view.rpeaks)


def test_scale_crop_moves_spikes_with_rpeaks():
    rng = np.random.default_rng(11)
    op = jax.jit(lambda k, v: scale_crop(k, v, min_scale=0.5))
    for i in range(30):
        rpeaks = random_rpeaks(rng)
        out = op(jax.random.key(i), spike_view(rpeaks))
        new = np.asarray(out.rpeaks)
        assert_packed(new)
        peaks = new[new >= 0]
        x = np.asarray(out.x)
        # The rounded peak is within half an output sample of the stretched spike's apex,
        # where the triangle 1 - s * |j - j*| is still >= 1 - s / 2 >= 0.5.
        assert np.all(x[:, peaks] >= 0.5 - 1e-5), (rpeaks, new)
        # Every spike visible inside the window sits within 1 sample of a reported peak.
        high = np.flatnonzero(x[0] > 0.6)
        interior = high[(high > 0) & (high < W - 1)]
        for t in interior:
            assert np.min(np.abs(peaks - t)) <= 1, (t, peaks)


def test_time_shift_moves_spikes_with_rpeaks():
    rng = np.random.default_rng(12)
    op = jax.jit(lambda k, v: time_shift(k, v, max_frac=0.25))
    for i in range(30):
        rpeaks = random_rpeaks(rng)
        view = spike_view(rpeaks)
        out = op(jax.random.key(i), view)
        new = np.asarray(out.rpeaks)
        assert_packed(new)
        x = np.asarray(out.x)
        np.testing.assert_array_equal(np.flatnonzero(x[0]), new[new >= 0])
        shifts = [n for n in range(-32, 33) if np.array_equal(np.roll(view.x, n, 1), x)]
        assert shifts, "output is not a circular shift within +-0.25 W"


def test_lead_dropout_never_drops_all_present_leads():
    absent = (2, 5, 9)
    view = random_view(4, absent=absent)
    present = np.asarray(view.lead_mask) > 0
    op = jax.jit(lambda k, v: lead_dropout(k, v, prob=0.9))
    dropped_some = False
    for i in range(50):
        out = op(jax.random.key(i), view)
        mask = np.asarray(out.lead_mask)
        assert mask[present].sum() >= 1
        assert np.all(mask[~present] == 0)
        np.testing.assert_array_equal(np.asarray(out.x)[mask == 0], 0.0)
        np.testing.assert_array_equal(np.asarray(out.x)[mask > 0], np.asarray(view.x)[mask > 0])
        dropped_some |= bool((mask[present] == 0).any())
    assert dropped_some
    always = lead_dropout(jax.random.key(0), view, prob=1.0)
    assert np.asarray(always.lead_mask).sum() == 1


def vcg_ecg(seed: int, t: int = W) -> np.ndarray:
    vcg = np.random.default_rng(seed).standard_normal((3, t)).astype(np.float32)
    return np.asarray(vcg_to_ecg(jnp.asarray(vcg)))


def test_dower_round_trip_reproduces_vcg_subspace_signals():
    x = vcg_ecg(0)
    back = np.asarray(vcg_transform(jnp.asarray(x), jnp.eye(3), jnp.ones(3)))
    assert np.linalg.norm(back - x) / np.linalg.norm(x) < 3e-3
    view = View(jnp.asarray(x), jnp.full((K,), -1, jnp.int32), jnp.ones(12, jnp.float32))
    same = vcg_rotate_scale(jax.random.key(0), view, max_angle=0.0, scale_min=1.0, scale_max=1.0)
    np.testing.assert_allclose(same.x, x, atol=3e-3 * np.abs(x).max())


def test_vcg_rotate_scale_keeps_limb_lead_relations():
    x = np.asarray(random_view(1).x)  # arbitrary 12 leads, not in the Dower subspace
    view = View(jnp.asarray(x), jnp.full((K,), -1, jnp.int32), jnp.ones(12, jnp.float32))
    out = np.asarray(
        vcg_rotate_scale(jax.random.key(2), view, max_angle=45.0, scale_min=0.5, scale_max=1.5).x
    )
    i, ii = out[LEAD_INDEX["I"]], out[LEAD_INDEX["II"]]
    np.testing.assert_allclose(out[LEAD_INDEX["III"]], ii - i, atol=1e-5)
    np.testing.assert_allclose(out[LEAD_INDEX["aVR"]], -(i + ii) / 2, atol=1e-5)
    np.testing.assert_allclose(out[LEAD_INDEX["aVL"]], i - ii / 2, atol=1e-5)
    np.testing.assert_allclose(out[LEAD_INDEX["aVF"]], ii - i / 2, atol=1e-5)
    assert not np.allclose(out, x, atol=1e-2)
    # With an independent lead (V3) absent the VCG is unknown: the view passes through.
    missing = View(view.x.at[8].set(0.0), view.rpeaks, view.lead_mask.at[8].set(0.0))
    kept = vcg_rotate_scale(
        jax.random.key(2), missing, max_angle=45.0, scale_min=0.5, scale_max=1.5
    )
    np.testing.assert_array_equal(kept.x, missing.x)


def test_make_augment_rejects_unknown_names_and_bad_values():
    with pytest.raises(ValueError, match="unknown augmentation 'jitter'.*cycle_mask"):
        make_augment(single_op("jitter"), FS)
    with pytest.raises(ValueError, match="augment.scale_crop_min"):
        make_augment(single_op("scale_crop", scale_crop_min=0.0), FS)
    with pytest.raises(ValueError, match="augment.powerline_freq"):
        make_augment(single_op("powerline", powerline_freq=60.0), FS)
    ident = make_augment(dataclasses.replace(AugmentConfig(), ops=()), FS)
    view = random_view(0)
    assert ident(jax.random.key(0), view) is view


def test_augment_batch_gives_each_example_its_own_key():
    fn = make_augment(AugmentConfig(), FS)
    view = random_view(5)
    b = 4
    batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (b, *a.shape)), view)
    key = jax.random.key(9)
    out = jax.jit(lambda k, v: augment_batch(fn, k, v))(key, batch)
    assert out.x.shape == (b, 12, W) and out.rpeaks.shape == (b, K)
    xs = np.asarray(out.x)
    assert all(not np.allclose(xs[0], xs[i]) for i in range(1, b))
    keys = jax.random.split(key, b)
    np.testing.assert_allclose(xs[2], fn(keys[2], view).x, rtol=1e-4, atol=1e-4)


def ptbxl_view(start: int, width: int) -> View:
    signal, fields = wfdb.rdsamp(str(RECORD))
    x = np.zeros((12, signal.shape[0]), np.float32)
    for j, name in enumerate(fields["sig_name"]):
        x[LEAD_INDEX[canonical_lead(name)]] = signal[:, j]
    x = x[:, start : start + width]
    lead_ii = x[LEAD_INDEX["II"]]
    # A simple R-peak finder for the test (the project's QRS detector is not used here).
    peaks, _ = find_peaks(
        lead_ii, distance=int(0.3 * fields["fs"]), prominence=0.25 * np.ptp(lead_ii)
    )
    rpeaks = np.full(16, -1, np.int32)
    rpeaks[: len(peaks)] = peaks
    return View(jnp.asarray(x), jnp.asarray(rpeaks), jnp.ones(12, jnp.float32))


def test_real_ptbxl_record_through_the_default_chain(tmp_path):
    view = ptbxl_view(100, 500)
    peaks = np.asarray(view.rpeaks)
    assert (peaks >= 0).sum() >= 4, peaks  # several whole cycles to mask
    fn = jax.jit(make_augment(AugmentConfig(), FS))
    out = fn(jax.random.key(0), view)
    assert np.isfinite(np.asarray(out.x)).all()
    new = np.asarray(out.rpeaks)
    assert (new >= 0).sum() >= 1 and np.all(np.diff(new[new >= 0]) > 0)

    # Whole-cycle masking on real peaks.
    key = jax.random.key(3)
    mask = np.asarray(cycle_mask_samples(key, view.rpeaks, 500, prob=1.0, max_cycles=2))
    for a, b in cycles_of(peaks):
        assert mask[a:b].all() or not mask[a:b].any()
    assert mask.sum() > 0 and not mask[: peaks[0]].any()

    # A circular shift carries the real R-waves along with their indices.
    shifted = time_shift(jax.random.key(4), view, max_frac=0.25)
    lead = LEAD_INDEX["II"]
    np.testing.assert_array_equal(
        np.sort(np.asarray(shifted.x)[lead, np.asarray(shifted.rpeaks)[: len(peaks[peaks >= 0])]]),
        np.sort(np.asarray(view.x)[lead, peaks[peaks >= 0]]),
    )

    png = plot_augmentations(key, view, AugmentConfig(), FS, tmp_path / "views.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
