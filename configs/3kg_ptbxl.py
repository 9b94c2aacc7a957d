"""3KG (Gopal et al. 2021) on PTB-XL at 100 Hz, on the ACL-ECG experiment's budget.

Same data, window, encoder, optimizer and steps as configs/acl_ecg_ptbxl.py (its docstring has
the prepare commands, including the quicker folds 1-6 variant):

  python -m acl_jax.train --config configs/3kg_ptbxl.py --workdir runs/3kg_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/3kg_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --splits train,val,test

What 3KG changes:
- objective "3kg": same-patient positives (acl_jax.objectives.threekg).
- augment.ops ("vcg_rotate_scale", "timeout"): a VCG rotation + scaling of the heart axis, then
  a time mask, per view; ranges are AugmentConfig's vcg_max_angle (45 degrees),
  vcg_scale_min/max (0.5, 1.5) and timeout_max (0.2 of the window).
- loss.temperature 0.1.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="3kg",
        augment=dataclasses.replace(base.augment, ops=("vcg_rotate_scale", "timeout")),
        loss=dataclasses.replace(base.loss, temperature=0.1),
    )
