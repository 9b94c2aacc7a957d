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
# Warmup must end before the last step (a config rule): tiny's 10, fewer for short runs.
warmup=$((steps > 10 ? 10 : steps - 1))
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
alive() { kill -0 "$1" 2>/dev/null; }
# Each `timeout` leads its own process group (its trainer included): signal the whole group.
stop_all() {
  local p t
  for p in "${pids[@]}"; do
    if ((p > 0)); then kill -TERM -- "-$p" 2>/dev/null || true; fi
  done
  # SIGTERM: a trainer saves (if it can) and exits 0; one stuck in a collective with a dead
  # peer ends on the heartbeat timeout (10 s). After 30 s, SIGKILL.
  for ((t = 0; t < 300; t++)); do
    local any=0
    for p in "${pids[@]}"; do
      if ((p > 0)) && alive "$p"; then any=1; fi
    done
    ((any)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    if ((p > 0)); then kill -KILL -- "-$p" 2>/dev/null || true; fi
  done
}
trap stop_all EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

for ((i = 0; i < nproc; i++)); do
  cmd=(timeout "$limit" env JAX_PLATFORMS=cpu "JAX_NUM_CPU_DEVICES=$ndev"
    "$py" -m acl_jax.train --config configs/tiny.py --workdir "$workdir"
    "--config.data.dir=$data" --config.data.batch_size=16
    "--config.model.widths=8,16" "--config.model.blocks=1,1"
    "--config.train.steps=$steps" "--config.optim.warmup_steps=$warmup"
    --config.train.log_every=1 "--config.train.ckpt_every=$steps"
    "--coordinator=127.0.0.1:$port" "--num-processes=$nproc" "--process-id=$i" "$@")
  "${cmd[@]}" >"$logs/process_$i.log" 2>&1 &
  pids+=($!)
  echo "+ ${cmd[*]} > $logs/process_$i.log  (pid $!)"
done

# A process left alone would block in a collective: the first failure stops the others. The
# peers of a killed process abort (SIGABRT) within milliseconds, so after a failure one more
# second's deaths are collected too, and the aborts are reported last: the cause comes first.
failures=() left=$nproc
reap() {
  local i p code
  for ((i = 0; i < nproc; i++)); do
    p=${pids[i]}
    if ((p > 0)) && ! alive "$p"; then
      code=0
      wait "$p" || code=$?
      pids[i]=0 left=$((left - 1)) # 0: finished and reaped
      if ((code == 134)); then failures+=("$i:$code"); elif ((code != 0)); then failures=("$i:$code" "${failures[@]}"); fi
    fi
  done
}
while ((left > 0 && ${#failures[@]} == 0)); do
  sleep 0.2
  reap
done
if ((${#failures[@]} > 0)); then
  sleep 1 && reap
  stop_all
  for ((i = 0; i < nproc; i++)); do
    echo "--- process $i ($logs/process_$i.log)" >&2
    tail -n 30 "$logs/process_$i.log" >&2
  done
  why="" also=""
  for f in "${failures[@]}"; do
    i=${f%%:*} code=${f##*:}
    what="exited with status $code"
    if ((code == 124)); then what="ran past ${limit}s"; fi
    if ((code > 128 && code != 124)); then what="was killed by signal $((code - 128))"; fi
    if [ -z "$why" ]; then why="process $i $what"; else also="${also:+$also, }process $i $what"; fi
  done
  if [ -n "$also" ]; then why="$why (within a second: $also)"; fi
  echo "local_multiprocess: FAILED: $why; the other processes were stopped" >&2
  exit 1
fi
pids=()
tail -n 4 "$logs/process_0.log"
ckpt=$workdir/checkpoints/$steps
[ -d "$ckpt" ] || { echo "local_multiprocess: both processes succeeded but $ckpt is missing" >&2; exit 1; }
echo "ok: $nproc processes x $ndev devices; checkpoint: $ckpt   logs: $logs"
