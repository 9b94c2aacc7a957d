"""Optimizer and learning-rate schedule from `OptimConfig`."""

from __future__ import annotations

import jax
import optax

from acl_jax.config import OptimConfig

REFERENCE_BATCH = 256  # cfg.lr is the peak rate at this global batch; scaled linearly


def learning_rate(cfg: OptimConfig, batch_size: int, total_steps: int) -> optax.Schedule:
    """Linear warmup to lr * batch_size / 256, then cosine decay to 0 at `total_steps`."""
    peak = cfg.lr * batch_size / REFERENCE_BATCH
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def make_optimizer(cfg: OptimConfig, batch_size: int, total_steps: int):
    """AdamW or LARS with global-norm clipping; weight decay skips biases and norm scales."""
    schedule = learning_rate(cfg, batch_size, total_steps)

    def decay_mask(params):
        # Decaying 1-D parameters (biases, BatchNorm scales, lead embeddings' norms) hurts
        # contrastive pretraining; the usual practice (SimCLR, BYOL) excludes them.
        return jax.tree.map(lambda p: p.ndim > 1, params)

    if cfg.name == "adamw":
        opt = optax.adamw(schedule, weight_decay=cfg.weight_decay, mask=decay_mask)
    elif cfg.name == "lars":
        opt = optax.lars(
            schedule,
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
            weight_decay_mask=decay_mask,
            trust_ratio_mask=decay_mask,
        )
    else:
        raise ValueError(f"unknown optimizer {cfg.name!r} (--config.optim.name): adamw or lars")
    if cfg.clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt)
    return opt, schedule
