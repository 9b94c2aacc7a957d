"""CLEAR (CLEAR-HUG, arXiv 2512.24002) at 500 Hz, 10 s windows, a ~57M-parameter encoder: the
paper's model size (56.6M), as an accelerator preset (pod-sized).

  python -m acl_jax.prepare --dataset ptbxl --src /data/ptbxl --out data/prepared/ptbxl500 \
      --fs 500 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/clear_500hz_57m.py --workdir runs/clear_500hz_57m \
      --config.data.dir=data/prepared/ptbxl500
  python -m acl_jax.eval --workdir runs/clear_500hz_57m --data data/prepared/ptbxl500 \
      --task superdiagnostic --out runs/clear_500hz_57m/eval_superdiagnostic.json
  (HUG head, the method's own downstream protocol: add --protocol hug)

Cost and lowering: bench/presets.py, tests/test_presets.py, bench/device.sh.

Choices:
- Size: the paper reports 56.6M parameters; its width/depth split is not known to us. We use
  ViT-Base's width with 8 blocks: d_model 768, 12 heads, MLP ratio 4, depth 8. Each block holds
  7.09M parameters: 56,984,832 encoder parameters, within 0.7% of 56.6M. Decoder: 2 blocks of
  width 384 (12 heads; MAE's light decoder at half the encoder width): 60,964,574 in all. We
  cannot tell whether the paper's figure includes its decoder; we matched the encoder.
- model.dtype is not used by CLEAR's transformer (it computes in float32; the bfloat16
  variant exists for the ResNet presets only).
- Window 5000 = 10 s at 500 Hz; beat tokens are 0.7 s = 350 samples. max_beats 24 (10 s up to
  144 bpm): 12 x (24 + 1) = 300 tokens per example, dense attention.
- Batch 1024 global (32 per chip on 32 chips). MAE's recipe: AdamW, base lr 1.5e-4 per 256
  scaled linearly (acl_jax.train.optim does: peak 6e-4), weight decay 0.05, warmup 400 of
  4000 steps. No augmentation: the beat masking is the corruption.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import ClearConfig, Config, OptimConfig, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_500hz_1m.py"))
    return dataclasses.replace(
        base,
        objective="clear",
        data=dataclasses.replace(base.data, batch_size=1024),
        augment=dataclasses.replace(base.augment, ops=()),
        clear=ClearConfig(
            d_model=768, depth=8, heads=12, mlp_ratio=4, decoder_dim=384, decoder_depth=2
        ),
        optim=OptimConfig(name="adamw", lr=1.5e-4, weight_decay=0.05, warmup_steps=400),
    )
