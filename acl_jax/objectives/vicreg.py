"""VICReg (Bardes, Ponce, LeCun; ICLR 2022): variance-invariance-covariance regularization.

Two augmented views of N examples go through the encoder (global features, lead-wise or plain)
and a projector, giving Z, Z' (N, d). With Var the unbiased (N - 1) variance over the GLOBAL
batch and zbar the global batch mean:

    s(Z, Z') = (1 / (N d)) sum_b sum_j (z_bj - z'_bj)^2                  invariance (MSE)
    v(Z)     = (1 / d) sum_j max(0, 1 - sqrt(Var(z_j) + eps))           variance, eps = 1e-4
    C(Z)     = (1 / (N - 1)) sum_b (z_b - zbar)(z_b - zbar)^T           (d, d)
    c(Z)     = (1 / d) sum_{i != j} C(Z)_ij^2                           covariance
    L        = lambda s(Z, Z') + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z'))

with lambda = mu = 25, nu = 1 (the paper's weights; cfg.vicreg).

Choices where the paper leaves room (they follow the authors' released code, with which those
weights were tuned): the variance term averages the two views (the code's `/ 2`; the paper's
eq. 6 writes the sum), the covariance term sums them; the invariance MSE is a mean over the
GLOBAL batch (the released code averages the local batch, which differs from the single-device
value). Projector: 3 layers (Linear -> BatchNorm -> ReLU) x 2 -> Linear as in the paper, widths
cfg.model.proj_hidden and cfg.model.proj_dim instead of 3 x 8192 (configs/vicreg_ptbxl.py uses
3 x 512 for the CPU budget).

Sharding (docs/contracts.md): inside `jax.shard_map` over `axis_name` each device holds b = N / n
rows; means, variances, covariances and the MSE are psums of per-device sums divided by global
counts, so the loss is the same on every device and `jax.grad` outside the shard_map equals the
single-device gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config, VicregConfig
from acl_jax.objectives.barlow_twins import (
    RedundancyReduction,
    center,
    check_pair,
    global_gram,
    off_diagonal_sq,
)
from acl_jax.objectives.collectives import global_sum


def _variance_covariance(
    z: jax.Array, n: int, eps: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """v(Z), c(Z) and the mean per-dimension std for one view's (b, d) rows."""
    zc = center(z, n, axis_name)
    cov = global_gram(zc, zc, axis_name) / (n - 1)  # (d, d), global
    std = jnp.sqrt(jnp.diagonal(cov) + eps)
    d = z.shape[1]
    return jnp.mean(jax.nn.relu(1.0 - std)), off_diagonal_sq(cov) / d, std.mean()


def vicreg_loss(
    z1: jax.Array,
    z2: jax.Array,
    params: VicregConfig,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """VICReg loss (scalar, global) and metrics. z1, z2: (b, d) per-device projections;
    params: cfg.vicreg.

    Metrics (unweighted terms): loss_inv = s(Z, Z'), loss_var = (v(Z) + v(Z')) / 2,
    loss_cov = c(Z) + c(Z'), std = mean per-dimension std over both views (collapse monitor).
    """
    n = check_pair(z1, z2, axis_name, "vicreg_loss")
    diff = z1.astype(jnp.float32) - z2.astype(jnp.float32)
    inv = global_sum(jnp.sum(diff * diff), axis_name) / (n * z1.shape[1])
    v1, c1, s1 = _variance_covariance(z1, n, params.eps, axis_name)
    v2, c2, s2 = _variance_covariance(z2, n, params.eps, axis_name)
    var, cov = (v1 + v2) / 2, c1 + c2
    loss = params.sim_weight * inv + params.var_weight * var + params.cov_weight * cov
    return loss, {"loss_inv": inv, "loss_var": var, "loss_cov": cov, "std": (s1 + s2) / 2}


class VICReg(RedundancyReduction):
    """VICReg pretrainer: `vicreg_loss` with cfg.vicreg on the projector (expander) outputs."""

    loss_fn = staticmethod(vicreg_loss)

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        super().__init__(cfg, cfg.vicreg, fs=fs, bn_axis=bn_axis, rngs=rngs)
