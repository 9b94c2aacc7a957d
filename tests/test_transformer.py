"""Transformer parts: heartbeat tokenizer on real records, sparse CLEAR mask, masked attention."""

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference_clear as ref
import pytest
from flax import nnx

from acl_jax.config import ModelConfig
from acl_jax.data.qrs import detect_rpeaks
from acl_jax.models import ECGEncoder
from acl_jax.models.beats import clear_attention_mask, cut_beats, sample_beat_mask, token_layout
from acl_jax.models.transformer import Attention, BeatTransformer

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "ptbxl" / "records100"
BEFORE, AFTER, K = 25, 45, 16


def _records(n=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb under pandas 3 warns on import
        import wfdb

    heads = sorted(SAMPLE.rglob("*.hea"))[:n]
    out = []
    for h in heads:
        sig, fields = wfdb.rdsamp(str(h.with_suffix("")))
        x = np.nan_to_num(sig.T.astype(np.float32))  # (12, T) mV
        out.append((x, detect_rpeaks(x, fields["fs"])))
    return out


@pytest.fixture(scope="module")
def real_batch():
    recs = _records()
    x = np.stack([r[0] for r in recs])
    t = x.shape[-1]
    rpeaks = np.full((len(recs), K), -1, np.int32)
    for i, (_, peaks) in enumerate(recs):
        # Add peaks at both edges so edge beats (window partly outside the signal) are covered.
        peaks = np.unique(np.concatenate([[3], peaks, [t - 5]]))[:K]
        rpeaks[i, : len(peaks)] = peaks
    return x, rpeaks, [len(r[1]) for r in recs]


def test_cut_beats_on_real_records(real_batch):
    x, rpeaks, counts = real_batch
    assert min(counts) >= 5, "the detector found the beats of the real records"
    beats, valid = jax.jit(cut_beats, static_argnums=(2, 3))(x, rpeaks, BEFORE, AFTER)
    want, want_valid = ref.cut_beats(x, rpeaks, BEFORE, AFTER)
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_allclose(beats, want, atol=1e-7)
    assert beats.shape == (3, 12, K, BEFORE + AFTER)
    for n in range(3):
        for j in np.flatnonzero(rpeaks[n] >= 0):
            np.testing.assert_array_equal(beats[n, :, j, BEFORE], x[n, :, rpeaks[n, j]])
        # Invalid (-1) peaks give all-zero beats.
        assert not np.any(beats[n, :, rpeaks[n] < 0])
        # Edge beats: outside the signal is zero, inside is the signal.
        assert not np.any(beats[n, :, 0, : BEFORE - 3])
        np.testing.assert_array_equal(beats[n, :, 0, BEFORE - 3 :], x[n, :, : AFTER + 3])
        last = np.flatnonzero(rpeaks[n] == x.shape[-1] - 5)[0]
        assert not np.any(beats[n, :, last, BEFORE + 5 :])
    # Beats are centred on the R-peak: in each record's largest-amplitude lead the mean
    # |beat| of the detected (interior) beats peaks within 50 ms of the window's R position.
    for n in range(3):
        inner = (rpeaks[n] > BEFORE) & (rpeaks[n] < x.shape[-1] - AFTER)
        lead = np.argmax(np.ptp(x[n], axis=-1))
        profile = np.abs(np.asarray(beats)[n, lead, inner]).mean(axis=0)
        assert abs(int(np.argmax(profile)) - BEFORE) <= 5, profile


def test_sample_beat_mask_counts_and_validity():
    valid = np.zeros((12, 8), bool)
    valid[:10, :5] = True  # 50 valid tokens
    keys = jax.random.split(jax.random.key(0), 3)
    masks = [np.asarray(sample_beat_mask(k, valid, 0.75)) for k in keys]
    for m in masks:
        assert m.sum() == 38  # floor(0.75 * 50 + 0.5)
        assert not np.any(m & ~valid)
    assert not np.array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], sample_beat_mask(keys[0], valid, 0.75))


def _small_case():
    rng = np.random.default_rng(0)
    c, k = 4, 3
    present = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    beat_valid = np.array([[1, 1, 0], [1, 1, 1]], bool)[:, None, :] & present[:, :, None]
    masked = (rng.random((2, c, k)) < 0.6) & beat_valid
    masked[1, :, 1] = True  # a beat masked in every lead
    return present, beat_valid, masked


def test_sparse_mask_visible_sets():
    present, beat_valid, masked = _small_case()
    c, k = beat_valid.shape[1:]
    mask = np.asarray(clear_attention_mask(present, beat_valid, masked))
    assert mask.shape == (2, 1, c * (k + 1), c * (k + 1))
    lead, beat = (np.asarray(a) for a in token_layout(c, k))
    names = [("s", int(ld)) if j < 0 else ("b", int(ld), int(j)) for ld, j in zip(lead, beat)]
    n_masked = 0
    for e in range(2):
        for i, query in enumerate(names):
            got = {names[j] for j in np.flatnonzero(mask[e, 0, i])}
            assert got == ref.allowed_keys(query, present[e], beat_valid[e], masked[e]), query
            if query[0] == "b" and masked[e, query[1], query[2]]:
                n_masked += 1
                lead_q, beat_q = query[1], query[2]
                want = {("s", lead_q)} | {
                    ("b", m, beat_q) for m in range(c) if m != lead_q and beat_valid[e, m, beat_q]
                }
                assert got == want
    assert n_masked >= 6


def test_masked_attention_matches_numpy():
    present, beat_valid, masked = _small_case()
    mask = np.asarray(clear_attention_mask(present, beat_valid, masked))
    n, d, heads = mask.shape[-1], 16, 4
    attn = Attention(d, heads, rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).normal(size=(2, n, d)).astype(np.float32)
    got = jax.jit(lambda a, b: attn(a, b))(x, mask)
    want = ref.attention(
        x.astype(np.float64),
        np.asarray(attn.qkv.kernel[...], np.float64),
        np.asarray(attn.qkv.bias[...], np.float64),
        np.asarray(attn.out.kernel[...], np.float64),
        np.asarray(attn.out.bias[...], np.float64),
        heads,
        mask,
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The mask matters: full attention gives a different result.
    assert np.abs(np.asarray(attn(x, None)) - want).max() > 1e-3


def test_beat_transformer_ignores_absent_leads_and_invalid_beats(real_batch):
    x, rpeaks, _ = real_batch
    enc = BeatTransformer(
        before=BEFORE,
        after=AFTER,
        dim=16,
        depth=2,
        heads=2,
        mlp_ratio=2,
        regions=ModelConfig().regions,
        rngs=nnx.Rngs(0),
    )
    lead_mask = np.ones((3, 12), np.float32)
    lead_mask[0, [1, 2, 5]] = 0  # the whole inferior region absent in example 0
    short = rpeaks.copy()
    short[:, 6:] = -1
    fwd = nnx.jit(lambda m, a, b, c: (m(a, b, c), m.tokens(a, b, c)))
    feats, toks = fwd(enc, x, lead_mask, short)
    assert feats.global_.shape == (3, 16) and feats.regions.shape == (3, 4, 16)
    np.testing.assert_array_equal(feats.region_mask[0], [0, 1, 1, 1])
    assert toks.beats.shape == (3, 12, K, 16) and not np.any(toks.beats[:, :, 6:])
    noisy = x.copy()
    noisy[0, [1, 2, 5]] = 1e3  # absent leads' content must not reach any output
    feats2, _ = fwd(enc, noisy, lead_mask, short)
    np.testing.assert_allclose(feats2.global_, feats.global_, rtol=1e-6, atol=1e-6)
    # The summary tokens see beats: changing a present lead's signal changes the feature.
    noisy[1, 0] += 0.5
    feats3, _ = fwd(enc, noisy, lead_mask, short)
    assert np.abs(feats3.global_[1] - feats.global_[1]).max() > 1e-4


@pytest.mark.parametrize("lead_wise", [True, False])
def test_patch_transformer_backbone(lead_wise):
    cfg = ModelConfig(arch="transformer", lead_wise=lead_wise, widths=(16,), blocks=(2,))
    enc = ECGEncoder(cfg, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 12, 210)).astype(np.float32)  # 210 % 25 != 0
    mask = np.ones((2, 12), np.float32)
    f = nnx.jit(lambda m, a, b: m(a, b))(enc, x, mask)
    assert f.global_.shape == (2, 16) and np.isfinite(np.asarray(f.global_)).all()
    assert np.abs(np.asarray(f.global_[0] - f.global_[1])).max() > 1e-4
    assert (f.regions is not None) == lead_wise
    assert jnp.asarray(enc.backbone.dim) == 16
    # Dense features for LUDB segmentation: one per 25-sample patch, whose mean over patches
    # is exactly the pooled feature (plain 12-lead tokens: mean over leads, then patches).
    fmap = nnx.jit(lambda m, a, b: m.features_map(a, b))(enc, x, mask)
    assert fmap.shape == (2, 9, 16)  # ceil(210 / 25)
    if not lead_wise:
        np.testing.assert_allclose(fmap.mean(axis=1), f.global_, rtol=1e-5, atol=1e-6)
    half = mask.copy()
    half[:, 6:] = 0.0  # absent leads are zeroed before the tokens: garbage there cannot leak
    junk = x.copy()
    junk[:, 6:] = 1e3
    np.testing.assert_allclose(
        enc.features_map(junk, half), enc.features_map(x, half), rtol=1e-5, atol=1e-6
    )
