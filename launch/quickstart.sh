#!/usr/bin/env bash
# The main job on the bundled PTB-XL sample: set up, prepare shards, pretrain ACL-ECG (tiny
# config, a few minutes on 2 cores), linear-probe it on superdiagnostic labels (15 test records:
# a smoke test of the whole path, not a benchmark), and print where everything is.
#   OUT=runs/quickstart STEPS=60 bash launch/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
data=${DATA:-data/prepared/sample}
out=${OUT:-runs/quickstart}
steps=${STEPS:-60}
# Warmup must end before the last step (a config rule): tiny's 10, fewer for short runs.
warmup=$((steps > 10 ? 10 : steps - 1))
run() { echo "+ $*"; "$@"; }
if [ ! -f "$data/manifest.json" ]; then
  run .venv/bin/python -m acl_jax.prepare --dataset ptbxl --src data/sample/ptbxl --out "$data" \
      --splits train=1-4,val=5,test=6
fi
run .venv/bin/python -m acl_jax.train --config configs/tiny.py --workdir "$out" \
    --config.data.dir="$data" --config.train.steps="$steps" --config.optim.warmup_steps="$warmup"
run .venv/bin/python -m acl_jax.train.curves "$out"
run .venv/bin/python -m acl_jax.eval --workdir "$out" --data "$data" --task superdiagnostic \
    --protocol linear --out "$out/eval/superdiagnostic_linear.json"
echo "checkpoints: $out/checkpoints   metrics: $out/metrics.jsonl   loss curve: $out/loss.png"
echo "eval: $out/eval/superdiagnostic_linear.{json,md,_roc.png}   tensorboard --logdir $out/tb"
