"""VICReg (Bardes, Ponce, LeCun; ICLR 2022): variance-invariance-covariance regularization.

Two augmented views of N examples go through the encoder (global features, lead-wise or plain)
and a projector, giving Z, Z' (N, d). With Var the unbiased (N - 1) variance over the GLOBAL
batch and zbar the global batch mean:

    s(Z, Z') = (1 / (N d)) sum_b sum_j (z_bj - z'_bj)^2                  invariance (MSE)
    v(Z)     = (1 / d) sum_j max(0, 1 - sqrt(Var(z_j) + eps))           variance, eps = 1e-4
    C(Z)     = (1 / (N - 1)) sum_b (z_b - zbar)(z_b - zbar)^T           (d, d)
    c(Z)     = (1 / d) sum_{i != j} C(Z)_ij^2                           covariance
    L        = lambda s(Z, Z') + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z'))

with lambda = mu = 25, nu = 1 (the paper's weights).

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

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.models import ECGEncoder, MLPHead
from acl_jax.objectives.barlow_twins import center, check_pair, global_gram, off_diagonal_sq
from acl_jax.objectives.base import Pretrainer, TwoViews
from acl_jax.objectives.ntxent import global_sum


@dataclass(frozen=True, kw_only=True)
class VICRegParams:
    """VICReg hyperparameters (to move into `Config.loss` once it has these fields)."""

    sim_weight: float = 25.0  # lambda, invariance
    var_weight: float = 25.0  # mu, variance
    cov_weight: float = 1.0  # nu, covariance
    eps: float = 1e-4  # inside the square root of the variance term
    projector_layers: int = 3  # Linear layers in the projector (paper: 3)


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
    params: VICRegParams = VICRegParams(),
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """VICReg loss (scalar, global) and metrics. z1, z2: (b, d) per-device projections.

    Metrics (unweighted terms): loss_inv = s(Z, Z'), loss_var = (v(Z) + v(Z')) / 2,
    loss_cov = c(Z) + c(Z'), std = mean per-dimension std over both views (collapse monitor).
    """
    weights = (params.sim_weight, params.var_weight, params.cov_weight)
    if not all(w >= 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"VICReg weights must be >= 0 with at least one > 0, got {weights}")
    n = check_pair(z1, z2, axis_name, "vicreg_loss")
    diff = z1.astype(jnp.float32) - z2.astype(jnp.float32)
    inv = global_sum(jnp.sum(diff * diff), axis_name) / (n * z1.shape[1])
    v1, c1, s1 = _variance_covariance(z1, n, params.eps, axis_name)
    v2, c2, s2 = _variance_covariance(z2, n, params.eps, axis_name)
    var, cov = (v1 + v2) / 2, c1 + c2
    loss = params.sim_weight * inv + params.var_weight * var + params.cov_weight * cov
    return loss, {"loss_inv": inv, "loss_var": var, "loss_cov": cov, "std": (s1 + s2) / 2}


class VICReg(Pretrainer):
    """VICReg pretrainer: encoder global features -> projector (expander) -> `vicreg_loss`."""

    def __init__(
        self,
        cfg: Config,
        *,
        fs: int,
        bn_axis: str | None,
        rngs: nnx.Rngs,
    ):
        params = VICRegParams(
            sim_weight=cfg.loss.vicreg_sim,
            var_weight=cfg.loss.vicreg_var,
            cov_weight=cfg.loss.vicreg_cov,
        )
        self.encoder = ECGEncoder(cfg.model, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.projector = MLPHead(
            self.encoder.dim,
            m.proj_hidden,
            m.proj_dim,
            bn_axis=bn_axis,
            rngs=rngs,
            num_layers=params.projector_layers,
        )
        self._views = TwoViews(cfg, fs)
        self._params = params

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self._views(keys, batch)
        z1 = self.projector(self.encoder(v1.x, v1.lead_mask).global_)
        z2 = self.projector(self.encoder(v2.x, v2.lead_mask).global_)
        loss, metrics = vicreg_loss(z1, z2, self._params, axis_name)
        return loss, {"loss": loss, **metrics}
