"""ACL-ECG at 500 Hz on 10 s windows, ~10M-parameter encoder: an accelerator preset (pod-sized).

  python -m acl_jax.prepare --dataset ptbxl --src /data/ptbxl --out data/prepared/ptbxl500 \
      --fs 500 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/acl_ecg_500hz_10m.py \
      --workdir runs/acl_ecg_500hz_10m --config.data.dir=data/prepared/ptbxl500
  python -m acl_jax.eval --workdir runs/acl_ecg_500hz_10m --data data/prepared/ptbxl500 \
      --task superdiagnostic --out runs/acl_ecg_500hz_10m/eval_superdiagnostic.json

bfloat16 compute (parameters stay float32): add --config.model.dtype=bfloat16.
Cost and lowering: bench/presets.py, tests/test_presets.py, bench/device.sh (as in
configs/acl_ecg_500hz_1m.py).

Choices: as configs/acl_ecg_500hz_1m.py (window 5000 = 10 s at 500 Hz, max_beats 24, stride-4
15-wide stem, batch 2048 = 64 per chip on 32 chips, AdamW peak 4e-3, 4000 steps), with a
ResNet-18-like encoder one block deeper in stage 3: widths (64, 128, 256, 512), blocks
(2, 2, 3, 2), kernel 7: 9,651,520 encoder parameters (10,309,184 with the projection heads;
ResNet-18's (2, 2, 2, 2) would be 8.73M). bench/results/presets.json has the FLOPs.
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_500hz_1m.py"))
    return dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model, widths=(64, 128, 256, 512), blocks=(2, 2, 3, 2), kernel=7
        ),
    )
