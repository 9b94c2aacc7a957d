#!/usr/bin/env bash
# The main job on the bundled PTB-XL sample: set up, prepare shards, pretrain ACL-ECG (tiny
# config, a few minutes on 2 cores), and print where the checkpoint is.
#   OUT=runs/quickstart STEPS=60 bash launch/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
data=${DATA:-data/prepared/sample}
out=${OUT:-runs/quickstart}
steps=${STEPS:-60}
run() { echo "+ $*"; "$@"; }
if [ ! -f "$data/manifest.json" ]; then
  run .venv/bin/python -m acl_jax.prepare --dataset ptbxl --src data/sample/ptbxl --out "$data" \
      --splits train=1-4,val=5,test=6
fi
run .venv/bin/python -m acl_jax.train --config configs/tiny.py --workdir "$out" \
    --config.data.dir="$data" --config.train.steps="$steps"
echo "checkpoints: $out/checkpoints   metrics: $out/metrics.jsonl   tensorboard --logdir $out/tb"
