"""MoCo v3 baseline on PTB-XL at 100 Hz: the ACL-ECG experiment's budget, another objective.

Data, encoder, projector widths, augmentations, optimizer and steps are those of
configs/acl_ecg_ptbxl.py (same prepare commands and local variant there); the objective and
its temperature change.

  python -m acl_jax.train --config configs/moco_ptbxl.py \
      --workdir runs/moco_ptbxl --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/moco_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/moco_ptbxl/eval_superdiagnostic.json

Choices (acl_jax/objectives/moco.py has the formula):
- Temperature 0.2 (the paper's); the loss is scaled by 2 * 0.2 as in the paper's Algorithm 1.
- Projector Linear(256)-BN-ReLU-Linear(128)-BN (ResNet MoCo v3 shape at the ACL-ECG head's
  widths), predictor Linear(256)-BN-ReLU-Linear(128).
- Key-encoder EMA momentum 0.99 -> 1 with a cosine over train.steps (the paper's for ResNets);
  no queue (moco.queue_size 0, as in v3): negatives are the other view's keys of the global batch.
- AdamW at lr 1e-3 as for ACL-ECG, not the paper's LARS: the comparison isolates the objective.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base, objective="moco", loss=dataclasses.replace(base.loss, temperature=0.2)
    )
