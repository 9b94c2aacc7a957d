"""Independent float64 NumPy / plain-Python references for CoRe-ECG (loops, not vectorized)."""

import math

import numpy as np

LIMB = (0, 1, 2, 3, 4, 5)  # I, II, III, aVR, aVL, aVF in LEADS order
PRECORDIAL = (6, 7, 8, 9, 10, 11)


def nt_xent(z1, z2, tau):
    """SimCLR NT-Xent over 2N anchors, written out per anchor."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for k in range(2 * n):
        pos = (k + n) % (2 * n)
        denom = sum(math.exp(z[k] @ z[c] / tau) for c in range(2 * n) if c != k)
        total += -z[k] @ z[pos] / tau + math.log(denom)
    return total / (2 * n)


def masked_mse(pred, target, masked, norm_target=False):
    """Mean over masked tokens of the per-token mean squared error (last axis = samples)."""
    num, count = 0.0, 0
    for idx in zip(*np.nonzero(masked), strict=True):
        t = np.asarray(target[idx], np.float64)
        if norm_target:
            t = (t - t.mean()) / math.sqrt(t.var() + 1e-6)
        num += float(np.mean((np.asarray(pred[idx], np.float64) - t) ** 2))
        count += 1
    return num / max(count, 1)


def core_ecg_loss(pred, target, masked, z1, z2, w_rec, w_con, tau):
    return w_rec * masked_mse(pred, target, masked) + w_con * nt_xent(z1, z2, tau)


def stdm_compose(whole, spans, keeper, present):
    """STDM's lead mask from its unit draws, by the documented rule (before the fallback).

    whole (7,), spans (7, P) bool, keeper int (-1 none), present (12,) bool -> (12, P) bool.
    """
    p = spans.shape[1]
    out = np.zeros((12, p), bool)
    for lead in range(12):
        unit = 0 if lead in LIMB else 1 + PRECORDIAL.index(lead)
        for t in range(p):
            hidden = bool(whole[unit] or spans[unit, t])
            if lead in LIMB and lead == keeper:
                hidden = False
            out[lead, t] = hidden and bool(present[lead])
    return out


def limb_rule_holds(masked, present):
    """At every time step: no present limb lead masked, or at most one present limb lead visible."""
    for t in range(masked.shape[1]):
        limb = [lead for lead in LIMB if present[lead]]
        n_masked = sum(bool(masked[lead, t]) for lead in limb)
        n_visible = len(limb) - n_masked
        if n_masked > 0 and n_visible > 1:
            return False
    return True


def band_relative_change(x, y, fs, edges):
    """Per band: sum |Y_k - X_k|^2 / sum |X_k|^2 over the bins of the band and all leads."""
    fx, fy = np.fft.rfft(np.asarray(x, np.float64)), np.fft.rfft(np.asarray(y, np.float64))
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / fs)
    bounds = [0.0, *edges, np.inf]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sel = (freqs >= lo) & (freqs < hi)
        out.append(np.sum(np.abs(fy[:, sel] - fx[:, sel]) ** 2) / np.sum(np.abs(fx[:, sel]) ** 2))
    return np.asarray(out)
