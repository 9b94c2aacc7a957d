"""CLEAR (masked heartbeat reconstruction, CLEAR-HUG arXiv 2512.24002) on PTB-XL at 100 Hz.

Same data, optimizer and step budget as configs/acl_ecg_ptbxl.py; what CLEAR needs differs:

  python -m acl_jax.prepare --dataset ptbxl --src /tmp/acl_data/ptbxl \
      --out data/prepared/ptbxl100 --fs 100 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/clear_ptbxl.py --workdir runs/clear_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/clear_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/clear_ptbxl/eval_superdiagnostic.json
  (HUG head, the method's own downstream protocol: add --protocol hug)

Choices:
- Window 500 samples (5 s) and max_beats 10: heartbeat tokens need several beats per lead (a
  2.5 s crop holds 2-3), and 10 beats cover a 5 s window up to 120 bpm. Tokens per example:
  12 x (10 beats + 1 summary) = 132.
- Encoder and decoder sizes, mask ratio 0.75 and the beat window (0.25 s before, 0.45 s after
  R) are the `clear` section's defaults (acl_jax.config.ClearConfig: d_model 64, depth 4,
  4 heads, decoder 1 block of width 64); override with --config.clear.KEY=VALUE.
- No augmentation: the beat masking is the corruption (cfg.augment is unused by CLEAR).
- Cost: 0.18M parameters (encoder 0.14M); XLA cost analysis of one loss+gradient at batch 256
  gives 56 GFLOP, about 2.2x the ACL-ECG config's 26, so the same 1800 steps take longer than
  that config's 30-minute budget (attention is computed densely over the 132 tokens).
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="clear",
        data=dataclasses.replace(base.data, window=500, max_beats=10),
        augment=dataclasses.replace(base.augment, ops=()),
    )
