"""ACL-ECG pretraining on PTB-XL at 100 Hz: the real experiment, sized for one 30-minute CPU run.

Benchmark folds (PTB-XL's recommended split: train 1-8, val 9, test 10):

  python -m acl_jax.prepare --dataset ptbxl --src /tmp/acl_data/ptbxl \
      --out data/prepared/ptbxl100 --fs 100 --splits train=1-8,val=9,test=10
  python -m acl_jax.train --config configs/acl_ecg_ptbxl.py --workdir runs/acl_ecg_ptbxl \
      --config.data.dir=data/prepared/ptbxl100
  python -m acl_jax.eval --workdir runs/acl_ecg_ptbxl --data data/prepared/ptbxl100 \
      --task superdiagnostic --out runs/acl_ecg_ptbxl/eval_superdiagnostic.json

Local variant (train 1-4, val 5, test 6: a quicker prepare and epoch, same model):

  python -m acl_jax.prepare --dataset ptbxl --src /tmp/acl_data/ptbxl \
      --out data/prepared/ptbxl100_local --fs 100 --splits train=1-4,val=5,test=6
  python -m acl_jax.train --config configs/acl_ecg_ptbxl.py --workdir runs/acl_ecg_ptbxl_local \
      --config.data.dir=data/prepared/ptbxl100_local
  python -m acl_jax.eval --workdir runs/acl_ecg_ptbxl_local --data data/prepared/ptbxl100_local \
      --task superdiagnostic --out runs/acl_ecg_ptbxl_local/eval_superdiagnostic.json

(Other PTB-XL tasks: all, diagnostic, subdiagnostic, form, rhythm; add --protocol finetune or
--label-fraction F for the other evaluation protocols.)

Choices:
- Window 250 samples = 2.5 s at 100 Hz, random crops of the 10 s records: the CLOCS / 3KG
  lineage trains contrastive ECG encoders on 2.5 s segments (2-3 beats, enough for cycle
  masking), and a 10 s record holds four such crops, cheap extra view diversity.
- Batch 256 (the optimizer's reference batch, so lr 1e-3 is used as is), AdamW, warmup 500.
- Encoder: lead-wise ResNet1d, widths (8, 16, 32, 64), one block per stage, kernel 7: 61.6k
  parameters, the size class of the ACL-ECG authors' 78k-parameter per-lead backbone, and
  about 26 GFLOP per step (XLA cost analysis). Wider encoders cost proportionally more steps:
  (16, 32, 64, 64) is 2.6x the FLOPs. Measured with bench/train_step.py (config "real",
  bench/results/train_step.json, bench/README.md): end to end 180 samples/s = 0.70 steps/s
  at load average ~8 on the 2 shared cores; the step alone reached 2.6 steps/s at load 5.6;
  0.80 CPU-seconds per end-to-end step, so about 1.2-2.5 steps/s on an idle machine. The 3
  steps/s aim was not reached at a size still worth pretraining.
- Steps: 2000 (about 29 epochs of folds 1-8): 30 minutes at 1.1 steps/s. On a busy machine
  pass --config.train.steps=1200; an interrupted run resumes from its last checkpoint.
- Speed: --config.train.steps_per_call=5 (a divisor of log_every 50 and ckpt_every 250) runs 5
  steps per compiled call: 1.2x the samples/s of one step per call at K=4 on this CPU
  (bench/README.md, 2026-12-01: 531 vs 441 samples/s), for a 2-3x longer first compile. It
  stays 1 here so that the runs in the README (and the bundled model) reproduce bit for bit.
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
        data=DataConfig(dir="data/prepared/ptbxl100", window=250, batch_size=256, max_beats=8),
        augment=AugmentConfig(),
        model=ModelConfig(
            widths=(8, 16, 32, 64), blocks=(1, 1, 1, 1), kernel=7, proj_hidden=256, proj_dim=128
        ),
        loss=LossConfig(temperature=0.1),
        acl_ecg=AclEcgConfig(w_global=1.0, w_intra=1.0, w_inter=0.5),
        optim=OptimConfig(name="adamw", lr=1e-3, warmup_steps=500),
        train=TrainConfig(steps=2000, log_every=50, ckpt_every=250, keep=3),
    )
