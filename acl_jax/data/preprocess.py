"""Signal preprocessing shared by every dataset: lead mapping, resampling, band-pass filtering and
quality checks, from a reader's (T, n) float mV signal to the stored (12, T') int16 microvolts.

Order: reject short records -> map leads -> drop all-NaN leads -> reject remaining NaN/inf ->
resample -> band-pass -> mask flat leads -> int16 uV. BadRecord reasons here do not name a file
(process sees arrays only): the caller pairs them with the record id.
Filtering after resampling is cheaper (fewer samples), and resample_poly's own anti-aliasing FIR
already bounds the band at the new Nyquist rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from acl_jax.data.record import UV_PER_MV, to_microvolts
from acl_jax.data.sources import BadRecord
from acl_jax.leads import LEAD_INDEX, LEADS, NUM_LEADS, canonical_lead

# Band edges are kept below this fraction of the Nyquist rate: a Butterworth edge at Nyquist is
# undefined, and resample_poly's anti-aliasing filter already attenuates the last ~5%.
NYQUIST_MARGIN = 0.9


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw signals become stored records.

    fs:            output rate (Hz); any source rate is resampled to it.
    highpass_hz:   baseline-wander cutoff (0.5 Hz keeps the ST segment, AHA recommends <= 0.67);
                   None disables.
    lowpass_hz:    high-frequency (EMG) cutoff; clipped to NYQUIST_MARGIN * fs / 2 (45 Hz at
                   fs=100, so the default 40 Hz is kept); None disables.
    filter_order:  Butterworth order per edge; sosfiltfilt runs it forward and backward, so the
                   response is zero-phase with twice this order.
    notch_hz:      power-line notch (50 or 60); None (default) because at fs=100 the line
                   frequency is removed by resampling and the low-pass anyway.
    notch_q:       quality factor of the notch.
    flat_std_uv:   a lead whose filtered std is below this is flat (disconnected) and masked.
                   Real leads have std of tens to hundreds of uV even in low-voltage ECGs; 5 uV
                   stays above the rounding noise of a constant (1-5 uV ADC steps).
    min_leads:     fewer usable (present, non-flat) leads -> BadRecord; 1 rejects only records
                   whose leads are all flat or absent.
    min_seconds:   shorter records -> BadRecord.
    """

    fs: int = 100
    highpass_hz: float | None = 0.5
    lowpass_hz: float | None = 40.0
    filter_order: int = 3
    notch_hz: float | None = None
    notch_q: float = 30.0
    flat_std_uv: float = 5.0
    min_leads: int = 1
    min_seconds: float = 1.0


@dataclass(frozen=True)
class Processed:
    """signal_uv (12, T') int16 microvolts; signal_mv (12, T') float32 mV (same values, unrounded,
    for R-peak detection); lead_mask (12,) uint8; num_clipped samples beyond +-32.767 mV; notes
    about leads dropped on the way ("V3: all NaN, treated as absent")."""

    signal_uv: np.ndarray
    lead_mask: np.ndarray
    num_clipped: int
    signal_mv: np.ndarray
    notes: tuple[str, ...] = field(default=())


def map_leads(lead_names: list[str]) -> list[tuple[int, int]]:
    """[(source column, canonical index)] for the 12-lead names among `lead_names`.

    Other names (e.g. "VX", "ECG") are dropped; a lead named twice or no 12-lead name at all is
    BadRecord, since then the lead order cannot be trusted.
    """
    pairs, seen = [], {}
    for col, name in enumerate(lead_names):
        canon = canonical_lead(str(name))
        if canon is None:
            continue
        if canon in seen:
            raise BadRecord(f"duplicate lead {canon}: source names {seen[canon]!r} and {name!r}")
        seen[canon] = name
        pairs.append((col, LEAD_INDEX[canon]))
    if not pairs:
        raise BadRecord(f"wrong lead set: found {list(lead_names)}, expected some of {list(LEADS)}")
    return pairs


def resample_ratio(fs_in: float, fs_out: int) -> tuple[int, int]:
    """(up, down) with up/down ~= fs_out/fs_in; a source rate like 128.5 Hz is approximated
    within 0.1% (denominators up to 1000) so resample_poly's filter stays short."""
    ratio = (Fraction(int(fs_out)) / Fraction(float(fs_in))).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


@functools.lru_cache(maxsize=64)
def filter_sos(fs: int, cfg: PreprocessConfig) -> np.ndarray | None:
    """(sections, 6) band-pass (+ notch) filter of `cfg` at rate `fs`, or None when disabled."""
    nyq = fs / 2.0
    low = cfg.highpass_hz
    high = min(cfg.lowpass_hz, NYQUIST_MARGIN * nyq) if cfg.lowpass_hz is not None else None
    sos = []
    if low is not None and high is not None:
        if not 0 < low < high:
            raise ValueError(f"PreprocessConfig: highpass_hz={low} must be in (0, {high})")
        sos.append(sps.butter(cfg.filter_order, [low, high], "bandpass", fs=fs, output="sos"))
    elif low is not None:
        sos.append(sps.butter(cfg.filter_order, low, "highpass", fs=fs, output="sos"))
    elif high is not None:
        sos.append(sps.butter(cfg.filter_order, high, "lowpass", fs=fs, output="sos"))
    if cfg.notch_hz is not None and cfg.notch_hz < NYQUIST_MARGIN * nyq:
        b, a = sps.iirnotch(cfg.notch_hz, cfg.notch_q, fs=fs)
        sos.append(sps.tf2sos(b, a))
    return np.concatenate(sos) if sos else None


@functools.lru_cache(maxsize=64)
def _steady_state(sos_bytes: bytes) -> np.ndarray:
    return sps.sosfilt_zi(np.frombuffer(sos_bytes).reshape(-1, 6))


def filtfilt(sos: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Zero-phase filtering of (n, T) along T; identical to `sps.sosfiltfilt(sos, y, axis=1)`
    (odd extension, default pad length, steady-state initial conditions) but with the initial
    conditions cached, which is a third of sosfiltfilt's time on a 12 x 1000 record."""
    pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    if y.shape[1] <= pad:
        raise BadRecord(f"too short to filter: {y.shape[1]} samples <= {pad}")
    zi = _steady_state(sos.tobytes())[:, None, :]  # (sections, 1, 2), scaled by the first sample
    ext = np.concatenate(
        [2 * y[:, :1] - y[:, pad:0:-1], y, 2 * y[:, -1:] - y[:, -2 : -pad - 2 : -1]], axis=1
    )
    fwd, _ = sps.sosfilt(sos, ext, axis=1, zi=zi * ext[None, :, :1])
    rev = fwd[:, ::-1]
    back, _ = sps.sosfilt(sos, rev, axis=1, zi=zi * rev[None, :, :1])
    return back[:, ::-1][:, pad:-pad]


def process(
    signal: np.ndarray, lead_names: list[str], fs: float, cfg: PreprocessConfig
) -> Processed:
    """(T, n) float mV at `fs` -> Processed (12, T') at cfg.fs; BadRecord if unusable."""
    x = np.asarray(signal, np.float64)
    if x.ndim != 2 or x.shape[1] != len(lead_names):
        raise BadRecord(f"signal shape {x.shape} does not match {len(lead_names)} lead names")
    if not np.isfinite(fs) or fs <= 0:
        raise BadRecord(f"sampling rate {fs} is not positive")
    if x.shape[0] < cfg.min_seconds * fs:
        raise BadRecord(f"too short: {x.shape[0]} samples at {fs} Hz < {cfg.min_seconds} s")
    pairs = map_leads(lead_names)
    notes = []
    finite = np.isfinite(x)
    kept = []
    for col, idx in pairs:
        if not finite[:, col].any():
            notes.append(f"{LEADS[idx]}: all NaN, treated as absent")
        else:
            kept.append((col, idx))
    if not kept:
        raise BadRecord(f"all leads are NaN ({[LEADS[i] for _, i in pairs]})")
    bad = [
        f"{LEADS[i]} ({int((~finite[:, c]).sum())} samples)"
        for c, i in kept
        if not finite[:, c].all()
    ]
    if bad:
        raise BadRecord(f"NaN/inf samples in leads {bad}")
    cols = [c for c, _ in kept]
    y = np.ascontiguousarray(x[:, cols].T)  # (n_kept, T): filters run along contiguous time
    if float(fs) != cfg.fs:
        up, down = resample_ratio(fs, cfg.fs)
        y = sps.resample_poly(y, up, down, axis=1)
    sos = filter_sos(cfg.fs, cfg)
    if sos is not None:
        y = filtfilt(sos, y)
    std_uv = y.std(axis=1) * UV_PER_MV
    out = np.zeros((NUM_LEADS, y.shape[1]), np.float32)
    mask = np.zeros(NUM_LEADS, np.uint8)
    for row, (_, idx) in enumerate(kept):
        if std_uv[row] < cfg.flat_std_uv:
            notes.append(f"{LEADS[idx]}: flat (std {std_uv[row]:.2f} uV), masked")
            continue
        out[idx] = y[row]
        mask[idx] = 1
    if int(mask.sum()) < cfg.min_leads:
        raise BadRecord(
            f"too few usable leads ({int(mask.sum())} < {cfg.min_leads}): {'; '.join(notes)}"
        )
    uv, clipped = to_microvolts(out)
    return Processed(uv, mask, clipped, out, tuple(notes))
