"""LCD (lead correlation with a momentum target + cross-lead decorrelation) on PTB-XL at 100 Hz.

Same data, model, optimizer and steps budget as configs/acl_ecg_ptbxl.py (its docstring has the
prepare command and the choices); only the objective differs. LCD's own settings are
lcd.lambda_dec = 1 (the `lcd` section's default) and the shared EMA schedule (tau_base 0.99
rising to 1 over cfg.train.steps, acl_jax/objectives/ema.py); the other cfg.loss fields
are unused.

  python -m acl_jax.train --config configs/lcd_ptbxl.py --workdir runs/lcd_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/lcd_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/lcd_ptbxl/eval_superdiagnostic.json
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(base, objective="lcd")
