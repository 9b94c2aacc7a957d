"""SimCLR baseline on PTB-XL at 100 Hz: the ACL-ECG experiment with only the global term.

Data, encoder, projector, augmentations (ACL-ECG's physiology-aware views), optimizer and steps
are those of configs/acl_ecg_ptbxl.py (same prepare commands and local variant there); only the
objective changes, so the comparison isolates ACL-ECG's region terms.

  python -m acl_jax.train --config configs/simclr_ptbxl.py \
      --workdir runs/simclr_ptbxl --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/simclr_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/simclr_ptbxl/eval_superdiagnostic.json

Choices (acl_jax/objectives/simclr.py and ntxent.py have the formula):
- NT-Xent at temperature 0.1 (loss.temperature, ACL-ECG's), negatives from every device.
- AdamW at lr 1e-3 and batch 256 as for ACL-ECG, not the paper's LARS at batch 4096.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(base, objective="simclr")
