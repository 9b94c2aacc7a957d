#!/usr/bin/env bash
# GPU training: one process per node sees all of the node's GPUs (JAX drives them all from one
# process; the "data" mesh axis spans every GPU of every node).
#
#   launch/gpu.sh install                                          # .venv + acl_jax + jax[cuda12]
#   launch/gpu.sh --workdir runs/acl --data ~/data/ptbxl100 train  # single node, all GPUs
#   launch/gpu.sh --workdir /shared/runs/acl --data /shared/ptbxl100 \
#       --coordinator node0:12345 --num-processes 2 --process-id 0 train   # on node 0
#       (the same with --process-id 1 on node 1; start them within a minute of each other)
#   launch/gpu.sh [flags] train -- --config.train.steps=20000    # extra trainer arguments
#
# Flags (or environment): --workdir (WORKDIR), --data (DATA), --config (CONFIG, default
# configs/acl_ecg_ptbxl.py), --coordinator HOST:PORT (COORDINATOR), --num-processes
# (NUM_PROCESSES), --process-id (PROCESS_ID), --gpus 0,1,2,3 (CUDA_VISIBLE_DEVICES),
# --dry-run (print the commands, run nothing). Multi-node runs need WORKDIR on storage every
# node sees (NFS, or gs:// per docs/gcs.md): the checkpoint is written jointly.
#
# XLA/JAX settings this script exports (override them in the environment):
#   XLA_PYTHON_CLIENT_MEM_FRACTION=0.9   JAX preallocates this share of each GPU's memory
#                                        (default 0.75); XLA_PYTHON_CLIENT_PREALLOCATE=false
#                                        allocates on demand instead (slower, shares the GPU)
#   XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true   overlaps the gradient
#                                        all-reduce with the backward pass
#   NCCL_DEBUG=WARN                      NCCL_DEBUG=INFO shows the chosen network and rings
set -euo pipefail
cd "$(dirname "$0")/.."

workdir=${WORKDIR:-} data=${DATA:-} config=${CONFIG:-configs/acl_ecg_ptbxl.py}
coordinator=${COORDINATOR:-} nproc=${NUM_PROCESSES:-} pid=${PROCESS_ID:-} gpus=${CUDA_VISIBLE_DEVICES:-}
dry=0 steps=() extra=()

die() { echo "gpu.sh: $*" >&2; exit 2; }
# The comment block above, without its '# ' (all of it, whatever its length).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while (($#)); do
  case $1 in
    --workdir) workdir=${2:?--workdir needs a value}; shift ;;
    --data) data=${2:?--data needs a value}; shift ;;
    --config) config=${2:?--config needs a value}; shift ;;
    --coordinator) coordinator=${2:?--coordinator needs HOST:PORT}; shift ;;
    --num-processes | --num_processes) nproc=${2:?--num-processes needs a value}; shift ;;
    --process-id | --process_id) pid=${2:?--process-id needs a value}; shift ;;
    --gpus) gpus=${2:?--gpus needs a list like 0,1}; shift ;;
    --dry-run) dry=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    install | train) steps+=("$1") ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
((${#steps[@]})) || die "no subcommand: give install and/or train"

run() {
  echo "+ $*"
  ((dry)) || "$@"
}

for s in "${steps[@]}"; do
  if [ "$s" = train ]; then
    [ -n "$workdir" ] || die "--workdir (or WORKDIR) is required for 'train'"
    [ -n "$data" ] || die "--data (or DATA) is required for 'train'"
    [ -f "$config" ] || die "--config $config does not exist"
    if [ -n "$coordinator$nproc$pid" ]; then
      [ -n "$coordinator" ] && [ -n "$nproc" ] && [ -n "$pid" ] ||
        die "multi-node needs all of --coordinator HOST:PORT, --num-processes N and --process-id I"
      ((pid >= 0 && pid < nproc)) || die "--process-id $pid must be in [0, --num-processes $nproc)"
    fi
  fi
done

export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
export XLA_FLAGS=${XLA_FLAGS:---xla_gpu_enable_latency_hiding_scheduler=true}
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
[ -n "$gpus" ] && export CUDA_VISIBLE_DEVICES=$gpus

for s in "${steps[@]}"; do
  echo "# $s"
  case $s in
    install)
      run bash launch/setup.sh
      run .venv/bin/python -m pip install -q -U "jax[cuda12]"
      run .venv/bin/python -c 'import jax; print(jax.devices())' ;;
    train)
      if ((!dry)) && command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
      fi
      args=(--config "$config" --workdir "$workdir" "--config.data.dir=$data")
      if [ -n "$coordinator" ]; then
        args+=("--coordinator=$coordinator" "--num-processes=$nproc" "--process-id=$pid")
      fi
      run .venv/bin/python -m acl_jax.train "${args[@]}" "${extra[@]}" ;;
  esac
done
