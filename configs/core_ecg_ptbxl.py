"""CoRe-ECG (contrastive + reconstructive, arXiv 2604.11359) on PTB-XL at 100 Hz.

Same data, optimizer and step budget as configs/acl_ecg_ptbxl.py; what CoRe-ECG needs differs:

  python -m acl_jax.prepare --dataset ptbxl --src /tmp/acl_data/ptbxl \
      --out data/prepared/ptbxl100 --fs 100 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/core_ecg_ptbxl.py --workdir runs/core_ecg_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/core_ecg_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/core_ecg_ptbxl/eval_superdiagnostic.json

Choices:
- Backbone: the patch transformer (model.arch "transformer", plain 12-lead tokens so attention
  crosses leads, which STDM's cross-lead masking is about): D = 64, depth 4 (widths (64,),
  blocks (4,)), the size of the CLEAR config's encoder. Patch 25 samples (0.25 s): a 2.5 s
  window is 12 leads x 10 patches = 120 tokens.
- No cfg.augment ops: FDA (frequency perturbation) and STDM (the mask) are the method's
  corruptions; CoreEcg applies FDA itself. Adding time ops here composes them before FDA.
- Decoder, masking, FDA and loss weights are the `core_ecg` section's defaults
  (acl_jax.config.CoreEcgConfig: decoder 1 block of width 64; STDM time_ratio 0.5, span 2
  patches, lead_prob 0.2, keep_one_prob 0.5; w_rec = w_con = 1); override any of them with
  --config.core_ecg.KEY=VALUE.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="core_ecg",
        augment=dataclasses.replace(base.augment, ops=()),
        model=dataclasses.replace(
            base.model, arch="transformer", lead_wise=False, widths=(64,), blocks=(4,)
        ),
    )
