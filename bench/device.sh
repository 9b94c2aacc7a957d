#!/usr/bin/env bash
# Samples/s and MFU of the accelerator presets (configs/acl_ecg_500hz_1m.py, _10m.py,
# clear_500hz_57m.py) in float32 and bfloat16 on this machine's GPU(s) or TPU chips, plus the
# Grain pipeline's records/s against the step's: bench/device_step.py, JSON written to
# bench/results/device_<device kind>.json (or $ACL_DEVICE_OUT).
#
#   bash bench/device.sh            # on a GPU/TPU machine with jax[cuda12] / jax[tpu] installed
#   bash bench/device.sh --tiny     # any machine, CPU included: a tiny config, in seconds
#   bash bench/device.sh -- --steps 50 --per-device-batch 32   # extra device_step.py flags
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3); ACL_DEVICE_DATA, a
# prepared directory (default: the bundled PTB-XL sample prepared here, at 500 Hz for the
# presets, 100 Hz for --tiny; the 100 Hz source is resampled, fine for timing); ACL_DEVICE_OUT,
# the JSON path; ACL_DEVICE_TINY=1 is the same as --tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
tiny="${ACL_DEVICE_TINY:-0}"
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tiny) tiny=1 ;;
    --) shift; extra+=("$@"); break ;;
    *) echo "bench/device.sh: unknown argument $1 (use --tiny, or -- FLAGS for device_step.py)" >&2
       exit 2 ;;
  esac
  shift
done
fs=500
flags=()
if [[ "$tiny" == 1 ]]; then
  fs=100
  flags+=(--tiny --steps 2 --warmup 1)
fi
data="${ACL_DEVICE_DATA:-}"
if [[ -z "$data" ]]; then
  data="$(mktemp -d)/sample$fs"
  "$PYTHON" -m acl_jax.prepare --dataset ptbxl --src data/sample/ptbxl --out "$data" --fs "$fs" \
    --splits train=1-4,val=5,test=6 >/dev/null
fi
if [[ -n "${ACL_DEVICE_OUT:-}" ]]; then flags+=(--out "$ACL_DEVICE_OUT"); fi
"$PYTHON" -c 'import jax; print("devices:", jax.devices())'
exec "$PYTHON" bench/device_step.py --data "$data" "${flags[@]}" "${extra[@]}"
