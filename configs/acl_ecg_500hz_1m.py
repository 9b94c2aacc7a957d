"""ACL-ECG at 500 Hz on 10 s windows, ~1M-parameter encoder: an accelerator preset (pod-sized).

  python -m acl_jax.prepare --dataset ptbxl --src /data/ptbxl --out data/prepared/ptbxl500 \
      --fs 500 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/acl_ecg_500hz_1m.py --workdir runs/acl_ecg_500hz_1m \
      --config.data.dir=data/prepared/ptbxl500
  python -m acl_jax.eval --workdir runs/acl_ecg_500hz_1m --data data/prepared/ptbxl500 \
      --task superdiagnostic --out runs/acl_ecg_500hz_1m/eval_superdiagnostic.json

bfloat16 compute (parameters stay float32): add --config.model.dtype=bfloat16.
Cost and lowering: bench/presets.py (parameters, XLA FLOPs and bytes per step,
bench/results/presets.json); tests/test_presets.py exports this step for TPU and CUDA over an
abstract 32-device mesh; bench/device.sh measures samples/s and MFU on a GPU or TPU.

Choices:
- Window 5000 samples = the whole 10 s PTB-XL record at 500 Hz (prepare with --fs 500; the
  crop is then the record itself, the augmentations supply the view diversity). max_beats 24
  covers 10 s up to 144 bpm for cycle masking.
- Encoder: lead-wise ResNet1d, widths (32, 64, 128, 256), one block per stage, kernel 7, and a
  stride-4, 15-wide stem (the 100 Hz configs' stride-2 stem on 5x the samples would spend most
  FLOPs on the first stage; stage inputs are 625, 313, 157, 79 samples, all longer than the
  kernel): 966,944 encoder parameters (1,362,464 with the projection heads).
- Batch 2048 global (64 per chip on a 32-chip slice), AdamW. acl_jax scales optim.lr linearly
  from batch 256 (acl_jax.train.optim); lr 5e-4 gives a peak of 4e-3 at 2048, half of what
  linear scaling of the 100 Hz config's 1e-3 would give (8e-3, aggressive for Adam) and above
  square-root scaling (2.8e-3).
  Warmup 500 of 4000 steps: 8.2M windows, ~470 passes over PTB-XL folds 1-8 (17.4k records);
  on a larger corpus keep the batch and raise --config.train.steps.
"""

from acl_jax.config import (
    AclEcgConfig,
    AugmentConfig,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def get_config() -> Config:
    return Config(
        seed=0,
        objective="acl_ecg",
        data=DataConfig(
            dir="data/prepared/ptbxl500", window=5000, batch_size=2048, max_beats=24, prefetch=8
        ),
        augment=AugmentConfig(),
        model=ModelConfig(
            widths=(32, 64, 128, 256),
            blocks=(1, 1, 1, 1),
            kernel=7,
            stem_stride=4,
            stem_kernel=15,
            proj_hidden=512,
            proj_dim=128,
        ),
        loss=LossConfig(temperature=0.1),
        acl_ecg=AclEcgConfig(w_global=1.0, w_intra=1.0, w_inter=0.5),
        optim=OptimConfig(name="adamw", lr=5e-4, warmup_steps=500),
        train=TrainConfig(steps=4000, log_every=50, ckpt_every=500, keep=3),
    )
