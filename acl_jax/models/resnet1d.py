"""1-D ResNet backbone (its BatchNorm is acl_jax.models.batchnorm.MaskedBatchNorm).

`ResNet1d` maps (N, C, T) float32 signals to (N, widths[-1]) float32 features: a stem
convolution (stride `stem_stride`, default 2; width `stem_kernel`, default `kernel`) + BatchNorm +
ReLU + stride-2 max-pool, then one stage per entry of `widths` (`blocks[i]` basic residual blocks
of `widths[i]` channels, stride 2 at the start of every stage but the first), then a global
average pool over time. The time axis shrinks by `stem_stride` * 2 * 2**(S-1) (32 for the
default stem and 4 stages).

A wider, strided stem is a learned downsampling front end: every later layer's cost scales with
its time length, so `stem_stride=8` makes the stages 4x cheaper at the same parameter count
(bench/train_step.py, config "lcd", 8 of 12 leads encoded: 130 -> 22 GFLOP per step). Keep
`kernel` <= every stage's input length (T / (stem_stride * 2**(s+1)) for stage s): when a kernel
is longer than its input, XLA swaps the convolution's operands into a layout its CPU backend runs
as a naive loop (0.37 s instead of 0.02 s fwd+bwd at (2048, 8, 64), kernel 9).

Layout: the internal activation layout is a constructor choice, "nwc" (channels last, what
`nnx.Conv` uses; the input is transposed once at the start) or "ncw" (channels first, the input
layout, through `lax.conv_general_dilated` dimension numbers). Both hold the same parameters (a
(K, C_in, C_out) kernel per convolution), so a checkpoint loads into either. `DEFAULT_LAYOUT` is
"nwc": it was fastest on XLA CPU in bench/encoder_layout.py, which times both layouts and
float32 vs bfloat16 compute side by side (bench/results/encoder_layout.json). Forward+backward,
2 shared cores, two runs: "ncw" took 1.11-1.22x the "nwc" time; bfloat16 compute took
1.11-1.76x float32 (bfloat16 convolutions are not faster on XLA CPU), so float32 stays the default
`dtype`. Plain 12-channel (64, 128, 256, 256) x 2 blocks at batch 64 x 12 x 2500: 1.76 CPU s
per step with "nwc" float32.

Parameters are float32; `dtype` sets the compute dtype ("float32" or "bfloat16"); the
features are returned as float32 either way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.models.batchnorm import MaskedBatchNorm

LAYOUTS = ("nwc", "ncw")
DEFAULT_LAYOUT = "nwc"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
    """Maps a config dtype name ("float32" | "bfloat16") to a jnp dtype, with a clear error."""
    if name not in DTYPES:
        raise ValueError(f"model.dtype={name!r} is not supported; use one of {sorted(DTYPES)}")
    return DTYPES[name]


def max_pool_3_2(h, axis: int):
    """Max-pool, window 3, stride 2, SAME padding, along `axis`: the elementwise max of three
    strided slices. The same values as `lax.reduce_window`, whose gradient on XLA CPU
    (select-and-scatter with iota index maps) cost 5x more: 37 vs 7 ms fwd+bwd at
    (2048, 125, 8). At ties the gradient is split rather than sent to one element; after the
    ReLU that precedes the pool, ties are zeros, where the ReLU's gradient is 0 anyway."""
    t = h.shape[axis]
    out = -(-t // 2)
    total = max(2 * (out - 1) + 3 - t, 0)
    pads = [(0, 0)] * h.ndim
    pads[axis] = (total // 2, total - total // 2)
    hp = jnp.pad(h, pads, constant_values=-jnp.inf)

    def tap(j):
        return jax.lax.slice_in_dim(hp, j, j + 2 * out - 1, stride=2, axis=axis)

    return jnp.maximum(jnp.maximum(tap(0), tap(1)), tap(2))


class Conv1d(nnx.Module):
    """Bias-free 1-D convolution (a BatchNorm always follows) in either layout, SAME padding."""

    def __init__(self, c_in, c_out, kernel, stride=1, *, layout, dtype, rngs: nnx.Rngs):
        init = jax.nn.initializers.kaiming_normal()  # fan_in = K * C_in for a (K, I, O) kernel
        self.kernel = nnx.Param(init(rngs.params(), (kernel, c_in, c_out), jnp.float32))
        self.stride = stride
        self.layout = layout
        self.dtype = dtype

    def __call__(self, x):
        spec = "NWC" if self.layout == "nwc" else "NCW"
        return jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            self.kernel[...].astype(self.dtype),
            window_strides=(self.stride,),
            padding="SAME",
            dimension_numbers=(spec, "WIO", spec),
        )


class _ConvBN(nnx.Module):
    """Conv1d followed by MaskedBatchNorm over the layout's channel axis."""

    def __init__(self, c_in, c_out, kernel, stride, *, layout, dtype, bn_axis, rngs):
        self.conv = Conv1d(c_in, c_out, kernel, stride, layout=layout, dtype=dtype, rngs=rngs)
        self.bn = MaskedBatchNorm(
            c_out, axis=-1 if layout == "nwc" else 1, dtype=dtype, axis_name=bn_axis, rngs=rngs
        )

    def __call__(self, x, mask):
        return self.bn(self.conv(x), mask=mask)


class BasicBlock(nnx.Module):
    """Two k-wide ConvBN layers with a residual connection (1x1 ConvBN when the shape changes)."""

    def __init__(self, c_in, c_out, kernel, stride, *, layout, dtype, bn_axis, rngs):
        kw = dict(layout=layout, dtype=dtype, bn_axis=bn_axis, rngs=rngs)
        self.a = _ConvBN(c_in, c_out, kernel, stride, **kw)
        self.b = _ConvBN(c_out, c_out, kernel, 1, **kw)
        needs_proj = stride != 1 or c_in != c_out
        self.proj = nnx.data(_ConvBN(c_in, c_out, 1, stride, **kw) if needs_proj else None)

    def __call__(self, x, mask):
        h = jax.nn.relu(self.a(x, mask))
        h = self.b(h, mask)
        skip = x if self.proj is None else self.proj(x, mask)
        return jax.nn.relu(h + skip)


class ResNet1d(nnx.Module):
    """1-D ResNet: (N, C, T) float32 -> (N, widths[-1]) float32 features.

    Args:
      in_channels: C, the number of input channels (1 for the lead-wise encoder, 12 plain).
      widths, blocks: channels and number of basic blocks per stage (same length).
      kernel: convolution width (odd, e.g. 7).
      stem_stride: stride of the stem convolution (2 by default; 4 or 8 downsample early).
      stem_kernel: stem convolution width; 0 means `kernel` (a wider stem suits a larger stride,
        e.g. 2 * stem_stride + 1, so that every input sample is seen).
      dtype: compute dtype name, "float32" or "bfloat16" (parameters stay float32).
      bn_axis: mesh axis name for cross-device BatchNorm statistics, or None.
      layout: internal activation layout, "nwc" or "ncw" (see the module docstring).
    """

    def __init__(
        self,
        in_channels: int,
        widths,
        blocks,
        kernel: int,
        *,
        dtype: str = "float32",
        bn_axis: str | None = None,
        layout: str = DEFAULT_LAYOUT,
        stem_stride: int = 2,
        stem_kernel: int = 0,
        rngs: nnx.Rngs,
    ):
        widths, blocks = tuple(widths), tuple(blocks)
        if not widths or len(widths) != len(blocks):
            raise ValueError(
                f"model.widths={widths} and model.blocks={blocks} must be non-empty and of the "
                "same length (one entry per stage)"
            )
        if min(widths) < 1 or min(blocks) < 1 or kernel < 1:
            raise ValueError(
                f"model.widths, model.blocks and model.kernel must be positive, got "
                f"{widths}, {blocks}, {kernel}"
            )
        if stem_stride < 1 or stem_kernel < 0:
            raise ValueError(
                f"model.stem_stride must be >= 1 and model.stem_kernel >= 0 (0 = model.kernel), "
                f"got {stem_stride}, {stem_kernel}"
            )
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
        cdt = compute_dtype(dtype)
        kw = dict(layout=layout, dtype=cdt, bn_axis=bn_axis, rngs=rngs)
        self.layout = layout
        self.dtype = cdt
        self.dim = widths[-1]
        self.stem = _ConvBN(in_channels, widths[0], stem_kernel or kernel, stem_stride, **kw)
        self.downsample = stem_stride * 2 ** len(widths)
        layers, c_in = [], widths[0]
        for stage, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stride = 2 if stage > 0 and j == 0 else 1
                layers.append(BasicBlock(c_in, width, kernel, stride, **kw))
                c_in = width
        self.layers = nnx.List(layers)

    def _trunk(self, x, mask):
        """Stem, max-pool and stages: (N, C, T) -> activations in the layout, time axis."""
        if x.ndim != 3:
            raise ValueError(f"ResNet1d expects (N, C, T) input, got shape {x.shape}")
        h = x.astype(self.dtype)
        if self.layout == "nwc":
            h = jnp.swapaxes(h, 1, 2)  # the one transpose: (N, T, C) from here on
        h = jax.nn.relu(self.stem(h, mask))
        h = max_pool_3_2(h, 1 if self.layout == "nwc" else 2)
        for layer in self.layers:
            h = layer(h, mask)
        return h, 1 if self.layout == "nwc" else 2

    def __call__(self, x, mask=None):
        """x: (N, C, T) float; mask: optional (N,) 0/1, rows that count in BatchNorm statistics.

        Returns (N, widths[-1]) float32.
        """
        h, time_axis = self._trunk(x, mask)
        # Mean in float32 so bfloat16 compute does not lose the pooled precision.
        return jnp.mean(h.astype(jnp.float32), axis=time_axis)

    def features_map(self, x, mask=None):
        """The per-time features before the global pool, for dense (per-sample) tasks.

        x: (N, C, T), mask as in `__call__` -> (N, T', widths[-1]) float32 with
        T' = ceil(T / self.downsample), self.downsample = stem_stride * 2**S (SAME padding:
        nested ceilings of the strided steps equal this one); feature t' summarizes the input
        around samples [t' s, (t' + 1) s), s = T / T'. Its time mean is `__call__(x, mask)`.
        """
        h, time_axis = self._trunk(x, mask)
        h = h.astype(jnp.float32)
        return h if time_axis == 1 else jnp.swapaxes(h, 1, 2)
