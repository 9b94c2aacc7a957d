#!/usr/bin/env bash
# The multi-host code path on one machine: 2 processes x 4 emulated CPU devices coordinated on
# 127.0.0.1, a few tiny-config steps on the bundled PTB-XL sample (prepared if needed). Exits
# non-zero if either process fails; prints where the checkpoint is.
#   WORKDIR=runs/local_mp STEPS=4 bash launch/local_multiprocess.sh [extra --config.a.b=v ...]
# Environment: PYTHON (default .venv/bin/python), DATA (default data/prepared/sample),
# WORKDIR (default runs/local_multiprocess; an existing one is resumed), STEPS (4),
# TIMEOUT (seconds per process, 600).
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-.venv/bin/python}
data=${DATA:-data/prepared/sample}
workdir=${WORKDIR:-runs/local_multiprocess}
steps=${STEPS:-4}
limit=${TIMEOUT:-600}
nproc=2 ndev=4

command -v "$py" >/dev/null || { echo "local_multiprocess: $py not found: run launch/setup.sh or set PYTHON=" >&2; exit 2; }
run() { echo "+ $*"; "$@"; }

if [ ! -f "$data/manifest.json" ]; then
  run "$py" -m acl_jax.prepare --dataset ptbxl --src data/sample/ptbxl --out "$data" \
    --splits train=1-4,val=5,test=6 --workers 1
fi

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
logs=$workdir/logs
mkdir -p "$logs"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    if ((p > 0)); then kill "$p" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

for ((i = 0; i < nproc; i++)); do
  cmd=(timeout "$limit" env JAX_PLATFORMS=cpu "JAX_NUM_CPU_DEVICES=$ndev"
    "$py" -m acl_jax.train --config configs/tiny.py --workdir "$workdir"
    "--config.data.dir=$data" --config.data.batch_size=16
    "--config.model.widths=8,16" "--config.model.blocks=1,1"
    "--config.train.steps=$steps" --config.train.log_every=1 "--config.train.ckpt_every=$steps"
    "--coordinator=127.0.0.1:$port" "--num-processes=$nproc" "--process-id=$i" "$@")
  echo "+ ${cmd[*]} > $logs/process_$i.log"
  "${cmd[@]}" >"$logs/process_$i.log" 2>&1 &
  pids+=($!)
done

# A process left alone would block in a collective forever: the first failure stops the other.
failed=0 left=$nproc
while ((left > 0 && !failed)); do
  sleep 1
  for ((i = 0; i < nproc; i++)); do
    p=${pids[i]}
    if ((p > 0)) && ! kill -0 "$p" 2>/dev/null; then
      wait "$p" || failed=1
      pids[i]=0 left=$((left - 1)) # 0: finished and reaped
    fi
  done
done
if ((failed)); then
  cleanup
  for ((i = 0; i < nproc; i++)); do
    echo "--- process $i ($logs/process_$i.log)" >&2
    tail -n 30 "$logs/process_$i.log" >&2
  done
  echo "local_multiprocess: FAILED (a process exited non-zero or ran past ${limit}s)" >&2
  exit 1
fi
pids=()
tail -n 4 "$logs/process_0.log"
ckpt=$workdir/checkpoints/$steps
[ -d "$ckpt" ] || { echo "local_multiprocess: both processes succeeded but $ckpt is missing" >&2; exit 1; }
echo "ok: $nproc processes x $ndev devices; checkpoint: $ckpt   logs: $logs"
