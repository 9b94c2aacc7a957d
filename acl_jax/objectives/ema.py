"""Shared machinery of the predictor objectives (BYOL, SimSiam, MoCo v3, LCD): momentum (EMA)
target networks and their schedule (`MomentumTargets`), the projector and a collapse metric.

Targets. A target network is a copy of online modules (encoder, projector) whose `nnx.Param`s
are re-typed as `Target` variables: they live in the model state (so `nnx.state(model)` and
the checkpoints hold them) but are not Params, so neither `nnx.value_and_grad` (which
differentiates Params) nor `nnx.Optimizer(..., wrt=nnx.Param)` touches them. The copy keeps
its own `BatchStat`s: the target runs in training mode on the batch (see byol.py), updating its
own running statistics as deepmind-research's BYOL target state does; only weights are EMAs,
as in BYOL and MoCo v3 (`param_m = m * param_m + (1 - m) * param_b` over parameters only).

After optimizer update k (k = 1, 2, ... = `optimizer.step` after the update, what the trainer
passes to `update_targets`), every target weight moves towards its online weight:

    xi <- tau_k * xi + (1 - tau_k) * theta
    tau_k = 1 - (1 - tau_base) * (cos(pi * min(k - 1, K) / K) + 1) / 2

with K = cfg.train.steps: BYOL's schedule (Grill et al. 2020, sec. 3.2; deepmind-research's
`target_ema(global_step)` is evaluated with the 0-based step of the update, hence k - 1), also
MoCo v3's momentum schedule (Chen, Xie, He 2021). tau rises from tau_base to 1 at the end.

tau_base = cfg.loss.base_momentum, 0.99 by default, not BYOL's 0.996: our runs are ~2k steps,
not ~300k, and 1 / (1 - 0.99) = 100 steps of target memory suits them; BYOL's own ablation
(Table 5a) puts 0.99 close to 0.996, and 0.99 is MoCo v3's default for ResNets.
Predictor hidden width: cfg.model.pred_hidden, 0 picks the method's default (BYOL and MoCo v3:
proj_hidden, as in the papers; SimSiam: proj_dim // 4, its bottleneck).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.config import Config
from acl_jax.models.batchnorm import MaskedBatchNorm
from acl_jax.objectives.collectives import global_sum
from acl_jax.objectives.ntxent import l2_normalize


class Target(nnx.Variable):
    """A momentum-target weight: the EMA of a Param, never trained by the optimizer."""


def cosine_momentum(step: jax.Array, total_steps: int, base: float) -> jax.Array:
    """tau after update `step` (1-based) of `total_steps`: base at the first update, -> 1."""
    if total_steps < 1:
        raise ValueError(f"the momentum schedule needs cfg.train.steps >= 1, got {total_steps}")
    k = jnp.clip(jnp.asarray(step, jnp.float32) - 1.0, 0.0, float(total_steps))
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * k / total_steps) + 1.0) / 2.0


def make_target(online: nnx.Module) -> nnx.Module:
    """A copy of `online` with the same weights, its Params re-typed as `Target` variables."""
    copy = nnx.clone(online)
    nodes = dict(nnx.iter_graph(copy))
    for path, node in nodes.items():
        if isinstance(node, nnx.Param):
            parent, key = nodes[path[:-1]], path[-1]
            target = Target(node.get_value())
            if isinstance(parent, nnx.List):
                parent[key] = target
            else:
                setattr(parent, key, target)
    return copy


def _by_path(module: nnx.Module, kind: type) -> dict:
    return {path: v for path, v in nnx.iter_graph(module) if isinstance(v, kind)}


def ema_update(target: nnx.Module, online: nnx.Module, momentum: jax.Array) -> None:
    """In place: every Target of `target` <- m * itself + (1 - m) * the same-path online Param."""
    targets, params = _by_path(target, Target), _by_path(online, nnx.Param)
    if targets.keys() != params.keys():
        missing = sorted(set(targets) ^ set(params), key=str)[:3]
        raise ValueError(f"target and online modules differ in structure, e.g. at {missing}")
    for path, var in targets.items():
        online_value = jax.lax.stop_gradient(params[path][...])
        var[...] = momentum * var[...] + (1.0 - momentum) * online_value


class MomentumTargets:
    """Mixin for an objective with `encoder` and `projector`: `init_targets` copies them into
    `target_encoder` and `target_projector`, which `update_targets` moves towards them."""

    def init_targets(self, cfg: Config) -> None:
        # The target starts as an exact copy of the online modules (BYOL sec. 3.2).
        self.target_encoder = make_target(self.encoder)
        self.target_projector = make_target(self.projector)
        self._total_steps = cfg.train.steps
        self._base_momentum = cfg.loss.base_momentum

    def update_targets(self, step: jax.Array) -> None:
        tau = cosine_momentum(step, self._total_steps, self._base_momentum)
        ema_update(self.target_encoder, self.encoder, tau)
        ema_update(self.target_projector, self.projector, tau)


class Projector(nnx.Module):
    """(Linear -> BN -> ReLU) x (num_layers - 1) -> Linear [-> BN without affine parameters].

    With `out_bn` it is SimSiam's and MoCo v3's projector (both end with a BatchNorm without
    affine parameters; the Linear before it has no bias, which the BatchNorm would cancel).
    Without, it is `MLPHead`. (B, d_in) -> (B, d_out) float32.
    """

    def __init__(self, d_in, hidden, d_out, *, num_layers, out_bn, bn_axis, rngs):
        if num_layers < 1:
            raise ValueError(f"Projector num_layers must be >= 1, got {num_layers}")
        dims = [d_in] + [hidden] * (num_layers - 1) + [d_out]
        self.linears = nnx.List(
            [
                nnx.Linear(a, b, use_bias=(i == num_layers - 1 and not out_bn), rngs=rngs)
                for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
            ]
        )
        bn = functools.partial(MaskedBatchNorm, axis_name=bn_axis, rngs=rngs)
        self.norms = nnx.List([bn(b) for b in dims[1:-1]])
        self.out_bn = nnx.data(bn(d_out, use_scale=False, use_bias=False) if out_bn else None)

    def __call__(self, x):
        h = x
        for linear, norm in zip(self.linears[:-1], self.norms):
            h = jax.nn.relu(norm(linear(h)))
        z = self.linears[-1](h)
        return (z if self.out_bn is None else self.out_bn(z)).astype(jnp.float32)


def normalized_std(z: jax.Array, axis_name: str | None) -> jax.Array:
    """Mean over dimensions of the global-batch std of z / ||z||. z: (b, P) -> scalar.

    SimSiam's collapse monitor (Chen & He 2021, Fig. 2): 0 when every output is the same
    vector, about 1 / sqrt(P) for well spread outputs.
    """
    u = jax.lax.stop_gradient(l2_normalize(z))
    sums = global_sum(
        jnp.stack([jnp.sum(u, 0), jnp.sum(u * u, 0), jnp.full(u.shape[1:], u.shape[0], u.dtype)]),
        axis_name,
    )
    mean = sums[0] / sums[2]
    return jnp.mean(jnp.sqrt(jnp.maximum(sums[1] / sums[2] - mean * mean, 0.0)))
