"""CMSC (CLOCS, Kiyasseh et al. 2021) on PTB-XL at 100 Hz, on the ACL-ECG experiment's budget.

Same data, encoder, optimizer and steps as configs/acl_ecg_ptbxl.py (its docstring has the
prepare commands, including the quicker folds 1-6 variant):

  python -m acl_jax.train --config configs/cmsc_ptbxl.py --workdir runs/cmsc_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/cmsc_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --splits train,val,test

What CMSC changes:
- objective "cmsc": the two views are the adjacent halves of each window and all views of the
  same patient are positives (acl_jax.objectives.cmsc).
- data.window 500 (5 s) = two adjacent 250-sample (2.5 s) segments, so the encoder pretrains on
  inputs as long as the other PTB-XL configs' windows; max_beats 16 so each half can keep up to
  about 8 R-peaks (used only if augmentations are added).
- augment.ops (): CLOCS' CMSC uses no augmentation.
- loss.temperature 0.1, as in CLOCS.
Note: evaluation reads windows of cfg.data.window (500 samples here), not the 250-sample
segment length the encoder was pretrained on.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="cmsc",
        data=dataclasses.replace(base.data, window=500, max_beats=16),
        augment=dataclasses.replace(base.augment, ops=()),
        loss=dataclasses.replace(base.loss, temperature=0.1),
    )
