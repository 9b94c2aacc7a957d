"""R-peak detector (acl_jax.data.qrs) and LUDB reader (acl_jax.data.ludb) on real LUDB fixture
records and on synthetic ECG-like signals with known beat times."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.signal import resample_poly

from acl_jax.data.ludb import (
    WAVE_LABELS,
    annotated_span,
    qrs_peaks,
    read_ludb,
    wave_masks,
)
from acl_jax.data.qrs import detect_rpeaks, match_pairs, match_peaks
from acl_jax.leads import LEADS

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "ludb")
RECORDS = ("1", "8", "38")


@pytest.fixture(scope="module")
def ludb_records():
    return [read_ludb(os.path.join(FIXTURES, name)) for name in RECORDS]


def _synthetic_ecg(rng: np.random.Generator, fs: float, seconds: float = 10.0, absent=()):
    """(12, T) mV ECG-like signal and its true beat times (samples).

    Each lead: Gaussian Q-R-S complex plus wide P and T waves, with a random per-lead gain and
    sign (inverted leads), baseline wander, white noise and 50 Hz mains; `absent` leads zero.
    """
    t_len = int(seconds * fs)
    rr = rng.uniform(0.55, 1.1) * (1 + 0.15 * rng.standard_normal(40)).clip(0.7, 1.3)
    beats = np.cumsum(rr) + rng.uniform(0.2, 0.6)
    beats = beats[beats < seconds - 0.3]
    t = np.arange(t_len) / fs
    gauss = lambda mu, sd: np.exp(-0.5 * ((t[None, :] - mu[:, None]) / sd) ** 2).sum(axis=0)
    r = gauss(beats, 0.012)
    q = gauss(beats - 0.025, 0.008)
    s = gauss(beats + 0.03, 0.01)
    p = gauss(beats - 0.17, 0.025)
    tw = gauss(beats + 0.3, 0.05)
    x = np.zeros((12, t_len))
    for lead in range(12):
        sign = rng.choice([-1.0, 1.0])
        gain = rng.uniform(0.4, 2.0)
        complex_ = r - rng.uniform(0, 0.3) * q - rng.uniform(0, 0.5) * s
        waves = rng.uniform(0.05, 0.2) * p + rng.uniform(0.1, 0.5) * tw
        wander = 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        mains = 0.02 * np.sin(2 * np.pi * 50 * t) if fs > 100 else 0.0
        noise = 0.03 * rng.standard_normal(t_len)
        x[lead] = sign * gain * (complex_ + waves) + wander + mains + noise
    x[list(absent)] = 0.0
    return x, np.round(beats * fs).astype(np.int64)


@pytest.mark.parametrize("fs", [500, 100])
def test_ludb_fixture_accuracy(ludb_records, fs):
    for rec in ludb_records:
        x = rec.signal if fs == rec.fs else resample_poly(rec.signal, fs, int(rec.fs), axis=-1)
        det = detect_rpeaks(x, fs).astype(np.int64) * int(rec.fs // fs)
        lo, hi = annotated_span(rec)
        det = det[(det >= lo) & (det < hi)]
        ref = qrs_peaks(rec)
        tp, fp, fn = match_peaks(det, ref, rec.fs)
        assert tp / (tp + fn) >= 0.95, (rec.name, fs, tp, fp, fn)
        assert tp / (tp + fp) >= 0.95, (rec.name, fs, tp, fp, fn)


@pytest.mark.parametrize("fs", [100, 250, 500])
def test_synthetic_beats_recovered(fs):
    rng = np.random.default_rng(fs)
    tp = fp = fn = 0
    errors = []
    for absent in [(), (2, 3, 4), (0, 1, 6, 7, 8, 9, 10, 11)]:
        for _ in range(3):
            x, beats = _synthetic_ecg(rng, fs, absent=absent)
            mask = np.ones(12)
            mask[list(absent)] = 0
            det = detect_rpeaks(x, fs, mask)
            di, ri = match_pairs(det, beats, fs)
            tp, fp, fn = tp + di.size, fp + det.size - di.size, fn + beats.size - di.size
            errors.append(np.abs(det[di] - beats[ri]) / fs)
    assert tp / (tp + fn) >= 0.98 and tp / (tp + fp) >= 0.98, (tp, fp, fn)
    # Peaks land on the dominant deflection (R or S, 30 ms apart): well inside a QRS width.
    assert np.mean(np.concatenate(errors)) < 0.035


def test_inverted_signal_gives_the_same_beats():
    rng = np.random.default_rng(1)
    x, beats = _synthetic_ecg(rng, 500)
    up, down = detect_rpeaks(x, 500), detect_rpeaks(-x, 500)
    assert match_peaks(up, beats, 500)[0] == beats.size
    assert match_peaks(down, beats, 500)[0] == beats.size


def test_artifact_in_few_leads_is_not_a_beat():
    for seed in (2, 3, 4):
        x, beats = _synthetic_ecg(np.random.default_rng(seed), 250)
        gap = np.argmax(np.diff(beats))
        pop = (beats[gap] + beats[gap + 1]) // 2
        # Electrode pop mid-RR on V4-V6: a 3 mV step decaying in ~0.1 s, larger than the QRS.
        x[[9, 10, 11], pop:] -= 3.0 * np.exp(-np.arange(x.shape[1] - pop) / (0.05 * 250))
        assert match_peaks(detect_rpeaks(x, 250), beats, 250) == (beats.size, 0, 0), seed


def test_output_is_sorted_unique_int32():
    x, _ = _synthetic_ecg(np.random.default_rng(3), 100)
    det = detect_rpeaks(x.astype(np.float32), 100)
    assert det.dtype == np.int32
    assert det.size > 5
    assert np.all(np.diff(det) > 0)
    assert det.min() >= 0 and det.max() < x.shape[1]


def test_flat_or_absent_input_is_empty():
    for x in (np.zeros((12, 1000)), np.full((12, 1000), 0.3), np.zeros((12, 50))):
        det = detect_rpeaks(x, 100)
        assert det.dtype == np.int32 and det.size == 0
    x, _ = _synthetic_ecg(np.random.default_rng(4), 100)
    assert detect_rpeaks(x, 100, np.zeros(12)).size == 0
    assert detect_rpeaks(x[1], 100).size > 5  # a single lead (T,) works too


def test_bad_input_raises_clear_errors():
    x = np.zeros((12, 1000))
    x[3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detect_rpeaks(x, 100)
    with pytest.raises(ValueError, match="shape"):
        detect_rpeaks(np.zeros((2, 12, 1000)), 100)
    with pytest.raises(ValueError, match="lead_mask"):
        detect_rpeaks(np.ones((12, 1000)), 100, np.ones(11))


def test_match_peaks_hand_made():
    fs = 100.0  # tolerance 0.075 s = 7.5 samples
    assert match_peaks([10, 50, 90], [10, 50, 90], fs) == (3, 0, 0)
    assert match_peaks([17, 43], [10, 50], fs) == (2, 0, 0)
    assert match_peaks([18], [10], fs) == (0, 1, 1)
    assert match_peaks([9, 11], [10], fs) == (1, 1, 0)  # one-to-one: a reference is used once
    assert match_peaks([], [10, 20], fs) == (0, 0, 2)
    assert match_peaks([10, 20], [], fs) == (0, 2, 0)
    # The closer detection wins the shared reference; the other still matches its own.
    di, ri = match_pairs(np.array([16, 22]), np.array([20, 28]), fs)
    assert sorted(zip(di.tolist(), ri.tolist())) == [(0, 0), (1, 1)]
    assert match_peaks([14], [20, 8], fs, tolerance_s=0.05) == (0, 1, 2)


def test_read_ludb_signal_and_waves(ludb_records):
    rec = ludb_records[0]
    assert rec.signal.shape == (12, 5000) and rec.fs == 500.0
    assert set(rec.waves) == set(LEADS)
    assert 0.05 < np.abs(rec.signal).max() < 10  # mV, not raw ADC units
    for lead, waves in rec.waves.items():
        symbols = {w[0] for w in waves}
        assert symbols <= set(WAVE_LABELS) and "N" in symbols, lead
        for _, onset, peak, offset in waves:
            assert onset <= peak <= offset or -1 in (onset, offset)


def test_wave_masks_label_annotated_waves(ludb_records):
    for rec in ludb_records:
        for lead in ("II", "V1", "avf"):
            mask = wave_masks(rec, lead)
            assert mask.shape == (rec.signal.shape[1],) and set(np.unique(mask)) <= {0, 1, 2, 3}
            for sym, onset, peak, offset in rec.waves["aVF" if lead == "avf" else lead]:
                assert mask[peak] == WAVE_LABELS[sym]
                if onset >= 0 and offset >= 0:
                    assert np.all(mask[onset : offset + 1] == WAVE_LABELS[sym])
            assert mask[:100].max() == 0  # the first 0.2 s is never annotated in LUDB
    with pytest.raises(KeyError, match="no annotations"):
        wave_masks(ludb_records[0], "X1")


def test_qrs_reference_is_plausible(ludb_records):
    for rec in ludb_records:
        ref = qrs_peaks(rec)
        lead_ii = [w[2] for w in rec.waves["II"] if w[0] == "N"]
        assert abs(ref.size - len(lead_ii)) <= 1
        lo, hi = annotated_span(rec)
        assert lo <= ref.min() and ref.max() < hi
        rr_s = np.diff(ref) / rec.fs
        assert rr_s.min() > 0.25 and rr_s.max() < 2.5
        # Each consensus beat sits within 60 ms of lead II's own annotation.
        assert match_peaks(ref, lead_ii, rec.fs, tolerance_s=0.06)[0] >= len(lead_ii) - 1


def test_read_ludb_missing_record_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="without extension"):
        read_ludb(str(tmp_path / "nope"))


def test_match_pairs_is_a_maximum_matching():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rng = np.random.default_rng(5)
    for _ in range(200):
        det = rng.integers(0, 60, rng.integers(0, 8))
        ref = rng.integers(0, 60, rng.integers(0, 8))
        di, ri = match_pairs(det, ref, 100.0)
        assert len(set(di.tolist())) == di.size and len(set(ri.tolist())) == ri.size
        assert np.all(np.abs(det[di] - ref[ri]) <= 7.5)
        if det.size and ref.size:
            graph = csr_matrix(np.abs(det[:, None] - ref[None, :]) <= 7.5)
            best = (maximum_bipartite_matching(graph, perm_type="column") >= 0).sum()
        else:
            best = 0
        assert di.size == best


def test_heavy_noise_at_100hz_adds_few_false_beats():
    # 0.2 mV white noise per lead: at 100 Hz a third of it falls in the QRS band.
    tp = fp = fn = 0
    for seed in range(100, 110):
        rng = np.random.default_rng(seed)
        x, beats = _synthetic_ecg(rng, 100)
        x += 0.2 * rng.standard_normal(x.shape)
        a, b, c = match_peaks(detect_rpeaks(x, 100), beats, 100)
        tp, fp, fn = tp + a, fp + b, fn + c
    assert tp / (tp + fn) >= 0.95 and tp / (tp + fp) >= 0.95, (tp, fp, fn)
