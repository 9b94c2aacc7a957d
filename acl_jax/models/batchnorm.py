"""The masked BatchNorm every acl_jax model uses, with a two-pass hand-written backward.

Training mode, for x with feature axis f, row weights w (N,) (1: the row counts in the
statistics; absent ECG leads are 0), R the other axes and n = sum(w) * prod(R \\ {0}):

    s1 = sum_R w x,  s2 = sum_R w x^2   (psum over `axis_name`: global, exact across devices)
    mean = s1 / n,  var = max(0, s2 / n - mean^2),  r = (var + eps)^-1/2
    y = x * m + (b - mean m),  m = g r     (normalization and affine folded: one pass)

Backward, written by hand (`jax.custom_vjp`) as ONE reduction pass over (dy, x) and ONE
elementwise pass (XLA's autodiff of the forward: 263 fusions in the lcd encoder step, this:
227; the time is level within the noise, bench/encoder_passes.py):

    Sdy = sum_R dy,  Sdyx = sum_R dy x          (psum over `axis_name`)
    dg = r (Sdyx - mean Sdy),  db = Sdy,  dvar = -g r^3 (Sdyx - mean Sdy) / 2  (0 where var = 0)
    dx = dy m + w [(-m Sdy - 2 mean dvar) / n + 2 x dvar / n]

Sums run over every row (masked rows' outputs also depend on m and the shift); the statistics'
own gradient reaches only the rows with w = 1. Statistics and the backward's sums are float32
for bfloat16 compute too (autodiff of the bfloat16 forward sums dg and db in bfloat16, 3-7%
off the float32 reference); y and dx come back in the compute / input dtype.
tests/test_models.py checks this backward against autodiff of the same forward.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx


def _shape(x, feat: int) -> tuple[int, ...]:
    shape = [1] * x.ndim
    shape[feat] = -1
    return tuple(shape)


def _stats(x, w, feat: int, axis_name):
    """float32 (mean, var before the clamp, n) over every axis but `feat`, rows weighted by w."""
    red = tuple(i for i in range(x.ndim) if i != feat)
    xf = x.astype(jnp.float32)
    wb = w.astype(jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    per_row = math.prod(x.shape[i] for i in red if i != 0)
    s1, s2, n = jnp.sum(xf * wb, red), jnp.sum(xf * xf * wb, red), jnp.sum(wb) * per_row
    if axis_name is not None:
        s1, s2, n = jax.lax.psum((s1, s2, n), axis_name)
    safe_n = jnp.maximum(n, 1.0)
    mean = s1 / safe_n
    return mean, s2 / safe_n - mean * mean, n


def _scale_shift(x, m, shift, feat: int, dtype):
    """y = x * m + shift per feature, in the compute dtype: the one pass both modes share."""
    shape = _shape(x, feat)
    return x.astype(dtype) * m.astype(dtype).reshape(shape) + shift.astype(dtype).reshape(shape)


def _forward(x, w, g, b, feat, axis_name, eps, dtype):
    """Training-mode outputs and the residuals `_bwd` needs (also `batch_norm_train`'s fwd)."""
    mean, raw_var, n = _stats(x, w, feat, axis_name)
    var = jnp.maximum(0.0, raw_var)
    r = jax.lax.rsqrt(var + eps)
    m = g * r
    shift = b - mean * m
    y = _scale_shift(x, m, shift, feat, dtype)
    return (y, mean, var, n), (x, w, g, mean, raw_var, r, m, n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def batch_norm_train(x, w, g, b, feat: int, axis_name, eps: float, dtype):
    """Training-mode masked BatchNorm: x (N, ..., C at axis `feat`), w (N,), g, b (C,) float32 ->
    (y like x in `dtype`, batch mean (C,), batch var (C,), global count n ()), all stats float32.
    Only y carries a gradient (the statistics feed running averages under stop_gradient)."""
    return _forward(x, w, g, b, feat, axis_name, eps, dtype)[0]


def _bwd(feat, axis_name, eps, dtype, res, cts):
    del eps, dtype
    x, w, g, mean, raw_var, r, m, n = res
    red = tuple(i for i in range(x.ndim) if i != feat)
    dy, xf = cts[0].astype(jnp.float32), x.astype(jnp.float32)
    sdy, sdyx = jnp.sum(dy, red), jnp.sum(dy * xf, red)
    if axis_name is not None:
        sdy, sdyx = jax.lax.psum((sdy, sdyx), axis_name)
    dm = sdyx - mean * sdy
    dvar = jnp.where(raw_var > 0, -0.5 * g * dm * r * r * r, 0.0)
    safe_n = jnp.maximum(n, 1.0)
    ds1 = (-m * sdy - 2.0 * mean * dvar) / safe_n
    ds2 = 2.0 * dvar / safe_n
    shape = _shape(x, feat)
    wb = w.astype(jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    dx = dy * m.reshape(shape) + wb * (ds1.reshape(shape) + xf * ds2.reshape(shape))
    return dx.astype(x.dtype), jnp.zeros_like(w), r * dm, sdy


batch_norm_train.defvjp(_forward, _bwd)


class MaskedBatchNorm(nnx.BatchNorm):
    """`nnx.BatchNorm` whose batch statistics can skip rows, exact across devices.

    `mask` (N,) marks which rows (along axis 0) count in the batch statistics: absent ECG
    leads (all-zero inputs) would otherwise drag the mean and variance towards zero and make a
    lead's features depend on how many other leads are missing. Statistics are global sums
    divided by a global count (`lax.psum` over `axis_name`), which is exact inside `shard_map`
    even when devices hold different numbers of present rows; `nnx.BatchNorm`'s masked
    `pmean` of per-device means is not. Without a mask this equals `nnx.BatchNorm`.
    Running statistics are left unchanged when no row is present. Training mode runs
    `batch_norm_train` (the module docstring has its formulas).
    """

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        use_ra = self.use_running_average if use_running_average is None else use_running_average
        if use_ra is None:
            raise ValueError("MaskedBatchNorm needs use_running_average (use nnx.view(...))")
        feat = self.axis % x.ndim
        dtype = self.dtype or x.dtype
        ones = jnp.ones((x.shape[feat],), jnp.float32)
        g = ones if self.scale is None else self.scale[...]
        b = jnp.zeros_like(ones) if self.bias is None else self.bias[...]
        if use_ra:
            mul = jax.lax.rsqrt(self.var[...] + self.epsilon) * g
            return _scale_shift(x, mul, b - self.mean[...] * mul, feat, dtype)
        w = jnp.ones((x.shape[0],), jnp.float32) if mask is None else mask
        y, mean, var, n = batch_norm_train(
            x, w.astype(jnp.float32), g, b, feat, self.axis_name, self.epsilon, dtype
        )
        keep, mom = n > 0, self.momentum
        for stat, new in ((self.mean, mean), (self.var, var)):
            stat[...] = jax.lax.stop_gradient(
                jnp.where(keep, mom * stat[...] + (1 - mom) * new, stat[...])
            )
        return y
