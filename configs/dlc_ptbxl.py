"""DLC (lead-wise contrastive: intra-lead + inter-lead InfoNCE) on PTB-XL at 100 Hz.

Same data, model, optimizer and steps budget as configs/acl_ecg_ptbxl.py (its docstring has the
prepare command and the choices); only the objective differs. Term weights are the `dlc`
section's, dlc.w_intra = dlc.w_inter = 1; the temperature is cfg.loss's 0.1.

  python -m acl_jax.train --config configs/dlc_ptbxl.py --workdir runs/dlc_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/dlc_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/dlc_ptbxl/eval_superdiagnostic.json
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    # DLC has no global term; its intra-/inter-lead weights are the dlc section's.
    dlc = dataclasses.replace(base.dlc, w_intra=1.0, w_inter=1.0)
    return dataclasses.replace(base, objective="dlc", dlc=dlc)
