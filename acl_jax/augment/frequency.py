"""Frequency Dynamic Augmentation (FDA), after CoRe-ECG (Qin et al., arXiv 2604.11359).

The paper perturbs an ECG in the frequency domain with a strength set by each frequency's
importance; its exact formulas are not available to us, so this is our documented version.

Bands: edges e_1 < ... < e_{B-1} Hz cut [0, fs/2] into B bands; band b has a fixed prior
importance i_b in [0, 1] (defaults below: baseline wander < 0.5 Hz and noise/EMG/mains > 40 Hz
unimportant, the P/T (0.5-5 Hz) and QRS (5-15 Hz) energy important, QRS high-frequency detail
(15-40 Hz) in between). Per view, with X = rFFT of each lead over the W samples (bins
f_k = k fs / W, k = 0..W/2) and b(k) the band of bin k:

    s_b = jitter (1 - i_b)                      amplitude jitter strength
    p_b = drop_prob (1 - i_b)^2                 band dropout probability (squared, so an
                                                important band is almost never removed)
    u_k ~ U(-1, 1) per bin,  d_b ~ Bernoulli(p_b) per band
    G_k = 0 if d_{b(k)} else max(0, 1 + s_{b(k)} u_k)
    x'  = irFFT(G * X, n=W)

G is real (a zero-phase filter: waves do not move in time) and SHARED by the 12 leads: the
same linear filter on every lead keeps the linear lead relations exact (III = II - I,
aVR = -(I + II) / 2, ...), so the view stays a physiologically consistent 12-lead ECG; a
per-lead filter would break Einthoven's law, the kind of non-physiological distortion the
paper criticizes in naive augmentations. Absent leads (lead_mask 0) stay exactly zero;
rpeaks and lead_mask pass through. Circular (rFFT) edge effects are accepted: the perturbed
bands carry little energy.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from acl_jax.augment.view import View
from acl_jax.config import AugmentConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class FdaParams:
    band_edges_hz: tuple[float, ...] = (0.5, 5.0, 15.0, 40.0)
    importance: tuple[float, ...] = (0.2, 0.9, 0.9, 0.6, 0.1)  # one per band (len(edges) + 1)
    jitter: float = 0.8  # max relative amplitude jitter, reached at importance 0
    drop_prob: float = 0.3  # band dropout probability at importance 0

    def __post_init__(self):
        edges, imp = self.band_edges_hz, self.importance
        if any(b <= a for a, b in zip(edges, edges[1:])) or any(e <= 0 for e in edges):
            raise ValueError(f"fda band_edges_hz must be positive and increasing, got {edges}")
        if len(imp) != len(edges) + 1:
            raise ValueError(
                f"fda importance needs one value per band = len(band_edges_hz) + 1 = "
                f"{len(edges) + 1}, got {len(imp)} ({imp})"
            )
        if any(not 0.0 <= v <= 1.0 for v in imp):
            raise ValueError(f"fda importance values must be in [0, 1], got {imp}")
        if self.jitter < 0 or not 0.0 <= self.drop_prob <= 1.0:
            raise ValueError(
                f"fda jitter must be >= 0 and drop_prob in [0, 1], got {self.jitter}, "
                f"{self.drop_prob}"
            )

    def strengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(s (B,), p (B,)): the jitter strength and dropout probability of each band."""
        imp = np.asarray(self.importance, np.float64)
        return self.jitter * (1.0 - imp), self.drop_prob * (1.0 - imp) ** 2


@functools.lru_cache(maxsize=32)
def bin_bands(width: int, fs: float, edges: tuple[float, ...]) -> np.ndarray:
    """(W // 2 + 1,) int: the band index of each rFFT bin of a W-sample window at rate fs."""
    freqs = np.fft.rfftfreq(width, 1.0 / fs)
    return np.searchsorted(np.asarray(edges), freqs, side="right").astype(np.int32)


def fda_gain(key: jax.Array, width: int, *, fs: float, params: FdaParams) -> jax.Array:
    """(W // 2 + 1,) float32 real per-bin gain G of one view (module docstring)."""
    bands = jnp.asarray(bin_bands(width, float(fs), params.band_edges_hz))
    s, p = (jnp.asarray(a, jnp.float32) for a in params.strengths())
    k_jit, k_drop = jax.random.split(key)
    u = jax.random.uniform(k_jit, bands.shape, jnp.float32, -1.0, 1.0)
    dropped = jax.random.uniform(k_drop, s.shape) < p
    gain = jnp.maximum(0.0, 1.0 + s[bands] * u)
    return jnp.where(dropped[bands], 0.0, gain)


def fda(key: jax.Array, view: View, *, fs: float, params: FdaParams = FdaParams()) -> View:
    """Frequency Dynamic Augmentation of one View (x (12, W)); same shapes and dtypes."""
    x = view.x
    width = x.shape[-1]
    gain = fda_gain(key, width, fs=fs, params=params)
    y = jnp.fft.irfft(jnp.fft.rfft(x.astype(jnp.float32), axis=-1) * gain, n=width, axis=-1)
    y = jnp.where(view.lead_mask[:, None] > 0, y, 0.0)
    return View(y.astype(x.dtype), view.rpeaks, view.lead_mask)


def build_fda(cfg: AugmentConfig, fs: int):
    """Registry builder `(AugmentConfig, fs) -> op(key, view)`: FDA with FdaParams' defaults.

    AugmentConfig has no FDA fields; objective 'core_ecg' applies FDA itself with the
    parameters of its own config section (acl_jax.objectives.core_ecg.CoreEcgConfig).
    """
    del cfg
    return functools.partial(fda, fs=fs, params=FdaParams())
