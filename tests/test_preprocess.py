"""Preprocessing: lead mapping, resampling, filtering, quality checks, int16 conversion."""

from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from acl_jax.data import cinc, ptbxl
from acl_jax.data.preprocess import (
    PreprocessConfig,
    filter_sos,
    filtfilt,
    process,
    resample_ratio,
)
from acl_jax.data.record import to_microvolts
from acl_jax.data.sources import BadRecord
from acl_jax.leads import LEADS

ROOT = Path(__file__).resolve().parents[1]
RAW = PreprocessConfig(highpass_hz=None, lowpass_hz=None)  # no filtering: values pass through


def _leads_signal(names, fs=100, seconds=3.0):
    """(T, n) signal whose column j is a sine of amplitude 0.1 * (j + 1) mV at 3 Hz."""
    t = np.arange(int(fs * seconds)) / fs
    return np.stack([0.1 * (j + 1) * np.sin(2 * np.pi * 3 * t) for j in range(len(names))], 1)


def test_shuffled_aliased_lower_case_names_map_to_canonical_order():
    names = [
        "v6",
        "AVR",
        "lead I",
        "MLII",
        "iii",
        "aVL",
        "avf",
        "V1",
        "V2 ",
        "V3",
        "v4",
        "V5",
        "resp",
    ]
    x = _leads_signal(names)
    out = process(x, names, 100, RAW)
    assert out.signal_uv.shape == (12, 300) and out.signal_uv.dtype == np.int16
    assert out.signal_mv.dtype == np.float32
    np.testing.assert_array_equal(out.lead_mask, np.ones(12, np.uint8))
    canon = ["V6", "aVR", "I", "II", "III", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5"]
    for col, lead in enumerate(canon):
        np.testing.assert_allclose(out.signal_mv[LEADS.index(lead)], x[:, col], atol=1e-6)
    np.testing.assert_array_equal(out.signal_uv, to_microvolts(out.signal_mv)[0])


def test_missing_leads_are_zero_with_mask_zero():
    names = ["I", "II", "V1", "V2", "V5", "V6"]
    out = process(_leads_signal(names), names, 100, RAW)
    present = [LEADS.index(n) for n in names]
    assert out.lead_mask.tolist() == [int(i in present) for i in range(12)]
    absent = [i for i in range(12) if i not in present]
    assert not out.signal_uv[absent].any() and out.signal_uv[present].any()


def test_duplicate_and_wrong_lead_sets_are_bad_records():
    with pytest.raises(BadRecord, match="duplicate lead aVR: source names 'AVR' and 'avr'"):
        process(_leads_signal(["I", "AVR", "avr"]), ["I", "AVR", "avr"], 100, RAW)
    with pytest.raises(
        BadRecord,
        match=r"wrong lead set: found \['ABP', 'PLETH'\], expected "
        r"some of \['I', 'II'",
    ):
        process(_leads_signal(["ABP", "PLETH"]), ["ABP", "PLETH"], 100, RAW)


def _spectrum_peak(y, fs):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / fs)[np.argmax(spec)]


@pytest.mark.parametrize("fs_in", [500, 257, 128.5])
def test_resampling_keeps_frequency_and_amplitude(fs_in):
    t = np.arange(int(10 * fs_in)) / fs_in
    x = np.sin(2 * np.pi * 5.0 * t)[:, None]
    out = process(x, ["II"], fs_in, RAW)
    y = out.signal_mv[1]
    up, down = resample_ratio(fs_in, 100)
    assert abs(100 - fs_in * up / down) < 0.1
    assert len(y) == int(np.ceil(len(t) * up / down))
    assert abs(_spectrum_peak(y, 100) - 5.0) < 0.11  # FFT bin spacing is 0.1 Hz
    mid = y[100:-100]
    assert abs(np.abs(mid).max() - 1.0) < 0.01


def test_band_pass_removes_wander_keeps_qrs_band():
    fs = 100
    t = np.arange(30 * fs) / fs
    fast = 0.5 * np.sin(2 * np.pi * 10 * t)
    x = (2.0 * np.sin(2 * np.pi * 0.1 * t) + fast)[:, None]
    y = process(x, ["I"], fs, PreprocessConfig()).signal_mv[0]
    mid = slice(5 * fs, -5 * fs)  # away from the edge transients
    # The 2 mV wander is suppressed 100-fold while the 10 Hz component keeps its amplitude.
    assert np.abs(y[mid] - fast[mid]).max() < 0.02
    assert abs(y[mid].std() / fast[mid].std() - 1.0) < 0.01
    assert abs(_spectrum_peak(y, fs) - 10.0) < 0.05


def test_filtfilt_equals_scipy_sosfiltfilt():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(5, 777))
    for cfg in [PreprocessConfig(), PreprocessConfig(notch_hz=30.0, lowpass_hz=None)]:
        sos = filter_sos(100, cfg)
        np.testing.assert_allclose(filtfilt(sos, y), sps.sosfiltfilt(sos, y, axis=1), atol=1e-12)
    # 40 Hz requested at fs=50 is clipped below Nyquist rather than failing.
    assert filter_sos(50, PreprocessConfig(fs=50)) is not None


def test_nan_leads_flat_leads_and_short_records():
    names = list(LEADS)
    x = _leads_signal(names)
    x_nan_lead = x.copy()
    x_nan_lead[:, 8] = np.nan
    out = process(x_nan_lead, names, 100, PreprocessConfig())
    assert out.lead_mask[8] == 0 and out.lead_mask.sum() == 11 and not out.signal_uv[8].any()
    assert out.notes == ("V3: all NaN, treated as absent",)
    x_partial = x.copy()
    x_partial[10:20, 2] = np.nan
    with pytest.raises(BadRecord, match=r"NaN/inf samples in leads \['III \(10 samples\)'\]"):
        process(x_partial, names, 100, PreprocessConfig())
    with pytest.raises(BadRecord, match="all leads are NaN"):
        process(np.full_like(x, np.nan), names, 100, PreprocessConfig())
    x_flat_lead = x.copy()
    x_flat_lead[:, 0] = 0.25  # a disconnected lead: constant offset
    out = process(x_flat_lead, names, 100, PreprocessConfig())
    assert out.lead_mask[0] == 0 and out.lead_mask[1:].all() and not out.signal_uv[0].any()
    with pytest.raises(BadRecord, match=r"too few usable leads \(0 < 1\): I: flat \(std 0.00 uV\)"):
        process(np.full_like(x, 0.25), names, 100, PreprocessConfig())
    with pytest.raises(BadRecord, match=r"too short: 99 samples at 100 Hz < 1.0 s"):
        process(x[:99], names, 100, PreprocessConfig())


def test_clipping_is_counted():
    x = np.zeros((200, 1))
    x[50:53, 0] = 40.0  # 40 mV exceeds int16 microvolts
    out = process(x, ["V2"], 100, RAW)
    assert out.num_clipped == 3 and out.signal_uv[7].max() == 32767


def test_real_records_end_to_end():
    rec = ptbxl.list_records(ROOT / "data" / "sample" / "ptbxl", limit=1)[0]
    out = process(*ptbxl.load_signal(rec), PreprocessConfig())
    assert out.signal_uv.shape == (12, 1000) and out.lead_mask.all() and out.num_clipped == 0
    std_uv = out.signal_uv.std(axis=1)
    assert (std_uv > 20).all() and (std_uv < 2000).all()  # physiological amplitudes
    crec = cinc.list_records(ROOT / "tests" / "fixtures" / "cinc", limit=1)[0]  # A0004, 500 Hz
    sig, names, fs = cinc.load_signal(crec)
    out = process(sig, names, fs, PreprocessConfig())
    assert out.signal_uv.shape == (12, 5974 // 5 + 1) and out.lead_mask.all()
    assert abs(out.signal_uv.astype(float).mean()) < 50  # baseline removed
