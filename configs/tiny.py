"""Tiny ACL-ECG config: tests, the quickstart and smoke runs on any prepared data.

  python -m acl_jax.prepare --dataset ptbxl --src data/sample/ptbxl --out data/prepared/sample \
      --splits train=1-4,val=5,test=6
  python -m acl_jax.train --config configs/tiny.py --workdir runs/tiny \
      [--config.data.dir=data/prepared/sample --config.train.steps=100]
"""

from acl_jax.config import (
    AugmentConfig,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def get_config() -> Config:
    return Config(
        seed=0,
        objective="acl_ecg",
        data=DataConfig(dir="data/prepared/sample", window=250, batch_size=32, max_beats=8),
        augment=AugmentConfig(),
        model=ModelConfig(widths=(16, 32, 64), blocks=(1, 1, 1), proj_hidden=128, proj_dim=64),
        loss=LossConfig(temperature=0.1),
        optim=OptimConfig(lr=1e-3, warmup_steps=10),
        train=TrainConfig(steps=60, log_every=10, ckpt_every=20, keep=2),
    )
