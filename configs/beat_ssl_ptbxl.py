"""Beat-SSL (rhythm + heartbeat soft-target contrast, arXiv 2601.16147) on PTB-XL at 100 Hz.

Same data, window, encoder, optimizer and steps as configs/acl_ecg_ptbxl.py (its docstring has
the prepare commands, including the quicker folds 1-6 variant):

  python -m acl_jax.train --config configs/beat_ssl_ptbxl.py --workdir runs/beat_ssl_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/beat_ssl_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/beat_ssl_ptbxl/eval_superdiagnostic.json

What Beat-SSL changes:
- objective "beat_ssl" (acl_jax.objectives.beat_ssl): soft-target contrast of whole windows
  and of the beats cut at the stored R-peaks, one shared encoder.
- augment.ops ("vcg_rotate_scale", "gaussian_noise"): 3KG's VCG rotation + scaling (ranges
  AugmentConfig's vcg_max_angle 45 degrees, vcg_scale_min/max 0.5/1.5) and noise (0.05 mV);
  no op that moves time, so both views share their R-peaks and beat k is the same cycle.
- Beat-SSL's own settings are acl_jax.objectives.beat_ssl.BeatSslConfig's defaults (gamma 4,
  beats 0.25 s before / 0.45 s after R, 4 beats per window, w_rhythm = w_beat = 1) until
  Config has a `beat_ssl` section; loss.temperature 0.1 for both levels.
- Work: per view the encoder also runs on up to 4 beats of 70 samples per window (280
  samples per lead next to the window's 250), about 2.1x the samples the ACL-ECG config
  encodes per step (a sample count, not a measured time).
"""

import dataclasses
from pathlib import Path

from acl_jax.config import Config, load_config


def get_config() -> Config:
    base = load_config(Path(__file__).with_name("acl_ecg_ptbxl.py"))
    return dataclasses.replace(
        base,
        objective="beat_ssl",
        augment=dataclasses.replace(base.augment, ops=("vcg_rotate_scale", "gaussian_noise")),
    )
