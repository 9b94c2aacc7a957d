"""VICReg baseline on PTB-XL at 100 Hz: the ACL-ECG experiment's budget, another objective.

Data, encoder, augmentations, optimizer and steps are those of configs/acl_ecg_ptbxl.py (same
prepare commands and local variant there); only the objective and the projector change.

  python -m acl_jax.train --config configs/vicreg_ptbxl.py \
      --workdir runs/vicreg_ptbxl --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/vicreg_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/vicreg_ptbxl/eval_superdiagnostic.json

Choices (acl_jax/objectives/vicreg.py has the formula):
- Projector ("expander") 3 x 512 (Linear-BN-ReLU, Linear-BN-ReLU, Linear): the paper's shape at
  1/16 of its 8192 width, to stay within the CPU budget.
- Weights lambda = mu = 25, nu = 1, eps = 1e-4 (the paper's): the `vicreg` section's defaults
  (--config.vicreg.KEY=VALUE).
- AdamW at lr 1e-3 as for ACL-ECG, not the paper's LARS: the comparison isolates the objective.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="vicreg",
        model=dataclasses.replace(base.model, proj_hidden=512, proj_dim=512),
    )
