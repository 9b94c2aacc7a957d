"""SimSiam baseline on PTB-XL at 100 Hz: the ACL-ECG experiment's budget, another objective.

Data, encoder, projector widths, augmentations, optimizer and steps are those of
configs/acl_ecg_ptbxl.py (same prepare commands and local variant there); only the objective
changes.

  python -m acl_jax.train --config configs/simsiam_ptbxl.py \
      --workdir runs/simsiam_ptbxl --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/simsiam_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/simsiam_ptbxl/eval_superdiagnostic.json

Choices (acl_jax/objectives/simsiam.py has the formula):
- Projector 3 layers (256, 256, 128) with BatchNorm after each, the output's without affine
  parameters; predictor bottleneck 128 -> 32 -> 128 (the paper's 2048 -> 512 -> 2048 ratio).
- One learning-rate schedule for all parameters (the paper keeps the predictor's constant).
- AdamW at lr 1e-3 as for ACL-ECG, not the paper's SGD: the comparison isolates the objective.
  loss.temperature is unused. Watch `z_std` in the logs: near 0 means collapse.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(base, objective="simsiam")
