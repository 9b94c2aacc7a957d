"""MoCo v3 (Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers",
ICCV 2021), ResNet variant, with an optional MoCo v2-style queue.

Query network: encoder f, projector g (Linear-BN-ReLU-Linear-BN without affine), predictor h
(Linear-BN-ReLU-Linear). Key (momentum) network: copies of f and g whose weights are an EMA
of the query weights, m: tau_base -> 1 with a cosine schedule (ema.py). For two views of each
example, q = h(g(f(v))), k = sg(g_m(f_m(v))), all L2-normalized, and temperature tau:

    ctr(q, k)_i = -log( exp(q_i . k_i / tau) / sum_{c in C} exp(q_i . c / tau) )
    L = 2 tau [ (1/N) sum_i ctr(q1, k2)_i + (1/N) sum_i ctr(q2, k1)_i ]

C = the keys of the other view for the whole global batch (N), gathered from every device;
the positive of local query j on device d is global key d * b + j. The factor 2 tau is the
paper's (Algorithm 1, `CrossEntropyLoss()(logits, labels) * (2 * tau)`): it makes the
gradient's scale independent of tau. tau = cfg.loss.temperature (paper: 0.2).

Queue (off by default, as in v3): with cfg.moco.queue_size Q > 0, two replicated non-Param variables
hold, per view, the last Q L2-normalized keys of that view (newest first) and the number of
valid entries. Queries of view 1 add the view-2 queue to C (and vice versa), masked to its
valid entries; after the loss the step's all-gathered keys are pushed to the front of the
queue (first in, first out), inside the loss by state mutation, so it is checkpointed with
the model and every device holds the same queue. Per-view queues follow solo-learn's
symmetric MoCo v2+.

Choices: the momentum update happens after each optimizer update (MoCo v3 does it before the
forward pass of the next step: the same thing, the initial copy is already equal); the key
network runs in training mode (batch statistics), with its own BatchNorm statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from acl_jax.config import Config
from acl_jax.models import MLPHead
from acl_jax.objectives.byol import check_pairs
from acl_jax.objectives.collectives import gather, gather_replicated, global_sum
from acl_jax.objectives.ema import MomentumTargets, Projector
from acl_jax.objectives.ntxent import info_nce, l2_normalize
from acl_jax.objectives.two_view import TwoViewObjective


class Queue(nnx.Variable):
    """MoCo's key queue (and its fill count): model state, never trained."""


def moco_loss(
    q1: jax.Array,
    q2: jax.Array,
    k1: jax.Array,
    k2: jax.Array,
    temperature: float,
    axis_name: str | None = None,
    queue: jax.Array | None = None,
    queue_len: jax.Array | int = 0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """MoCo v3 symmetric InfoNCE (module docstring), global mean, scaled by 2 tau.

    q1, q2: (b, P) query predictions of views 1, 2; k1, k2: (b, P) keys (stop-gradient here).
    queue: optional (2, Q, P) unit keys of past steps, per view (view 1 at 0), newest first;
    only the first `queue_len` entries are used. Returns (loss, {"acc": top-1 accuracy of the
    positive among C over the 2N queries}).
    """
    check_pairs("moco_loss", q1, q2, k1, k2)
    b = q1.shape[0]
    u1, u2 = l2_normalize(k1), l2_normalize(k2)
    keys1 = lax.stop_gradient(gather(u1, axis_name))  # (N, P)
    keys2 = lax.stop_gradient(gather(u2, axis_name))
    n = keys1.shape[0]
    offset = 0 if axis_name is None else lax.axis_index(axis_name) * b
    positive = offset + jnp.arange(b)
    losses, hits = [], []
    for q, keys, view in ((q1, keys2, 1), (q2, keys1, 0)):
        cands = keys
        if queue is not None:
            if queue.ndim != 3 or queue.shape[0] != 2 or queue.shape[2] != q.shape[1]:
                raise ValueError(f"queue must be (2, Q, {q.shape[1]}), got {queue.shape}")
            cands = jnp.concatenate([keys, lax.stop_gradient(queue[view])])
        valid = jnp.arange(cands.shape[0]) < n + queue_len
        mask = jnp.broadcast_to(valid, (b, cands.shape[0]))
        loss, correct = info_nce(l2_normalize(q), cands, positive, mask, temperature)
        losses.append(loss.sum())
        hits.append(correct.sum(dtype=jnp.float32))
    total = global_sum(jnp.stack([losses[0] + losses[1], hits[0] + hits[1]]), axis_name)
    return 2.0 * temperature * total[0] / n, {"acc": total[1] / (2 * n)}


def enqueue(
    queue: jax.Array, queue_len: jax.Array, k1: jax.Array, k2: jax.Array, axis_name: str | None
) -> tuple[jax.Array, jax.Array]:
    """Pushes this step's global keys to the front of the (2, Q, P) queue, dropping the oldest.

    k1, k2: (b, P) per-device keys (normalized here). Returns (queue, queue_len), the same on
    every device of `axis_name`.
    """
    size = queue.shape[1]
    new = jnp.stack(
        [gather_replicated(lax.stop_gradient(l2_normalize(k)), axis_name) for k in (k1, k2)]
    )  # (2, N, P)
    merged = jnp.concatenate([new.astype(queue.dtype), queue], axis=1)[:, :size]
    return merged, jnp.minimum(queue_len + new.shape[1], size).astype(queue_len.dtype)


class MoCoV3(MomentumTargets, TwoViewObjective):
    """MoCo v3 pretrainer: query encoder + projector + predictor, momentum key encoder +
    projector, optional key queue (cfg.moco.queue_size)."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        m = cfg.model
        self.projector = Projector(
            self.encoder.dim,
            m.proj_hidden,
            m.proj_dim,
            num_layers=2,
            out_bn=True,
            bn_axis=bn_axis,
            rngs=rngs,
        )
        self.predictor = MLPHead(
            m.proj_dim, m.pred_hidden or m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs
        )
        self.init_targets(cfg)
        self._queue_size = cfg.moco.queue_size
        if self._queue_size:
            self.queue = Queue(jnp.zeros((2, self._queue_size, m.proj_dim), jnp.float32))
            self.queue_len = Queue(jnp.zeros((), jnp.int32))
        self._temperature = cfg.loss.temperature

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        v1, v2 = self.views(batch, keys)
        q1 = self.predictor(self.project(self.projector, v1))
        q2 = self.predictor(self.project(self.projector, v2))
        k1 = self.target_projector(self.target_encoder(v1.x, v1.lead_mask).global_)
        k2 = self.target_projector(self.target_encoder(v2.x, v2.lead_mask).global_)
        if not self._queue_size:
            loss, metrics = moco_loss(q1, q2, k1, k2, self._temperature, axis_name)
            return loss, {"loss": loss, **metrics}
        queue, queue_len = self.queue[...], self.queue_len[...]
        loss, metrics = moco_loss(
            q1, q2, k1, k2, self._temperature, axis_name, queue=queue, queue_len=queue_len
        )
        self.queue[...], self.queue_len[...] = enqueue(queue, queue_len, k1, k2, axis_name)
        return loss, {"loss": loss, **metrics, "queue_len": queue_len.astype(jnp.float32)}
