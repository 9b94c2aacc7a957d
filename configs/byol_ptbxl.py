"""BYOL baseline on PTB-XL at 100 Hz: the ACL-ECG experiment's budget, another objective.

Data, encoder, projector widths, augmentations, optimizer and steps are those of
configs/acl_ecg_ptbxl.py (same prepare commands and local variant there); only the objective
changes.

  python -m acl_jax.train --config configs/byol_ptbxl.py \
      --workdir runs/byol_ptbxl --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/byol_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/byol_ptbxl/eval_superdiagnostic.json

Choices (acl_jax/objectives/byol.py has the formula):
- Projector and predictor Linear(256)-BN-ReLU-Linear(128): the paper's shape (4096 -> 256) at
  the ACL-ECG head's widths; the predictor's hidden width is the projector's, as in the paper.
- Target EMA momentum from 0.99 (not the paper's 0.996: a 1800-step run, not ~300k steps) to 1
  with BYOL's cosine over train.steps (loss.base_momentum; objectives/ema.py).
- The target network normalizes with batch statistics (training mode), as deepmind-research.
- AdamW at lr 1e-3 as for ACL-ECG, not the paper's LARS: the comparison isolates the objective.
  loss.temperature is unused.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(base, objective="byol")
