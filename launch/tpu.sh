#!/usr/bin/env bash
# Cloud TPU VM (single host or pod slice) via gcloud: create, install, prepare, train, resume,
# status, teardown. Every command is printed as `+ cmd` before it runs; --dry-run only prints.
#
#   launch/tpu.sh --project P --zone us-central2-b --accelerator v4-32 \
#       --workdir gs://BUCKET/runs/acl --data /home/$USER/data/ptbxl100 all
#   launch/tpu.sh [flags] create install prepare train   # any subset, run in order
#   launch/tpu.sh [flags] train -- --config.train.steps=20000   # extra trainer arguments
#
# Flags (or environment): --project (TPU_PROJECT), --zone (TPU_ZONE), --accelerator
# (TPU_ACCELERATOR, e.g. v4-8, v4-32, v5litepod-16, v6e-8), --name (TPU_NAME, default
# acl-jax-ACCELERATOR), --runtime-version (TPU_RUNTIME_VERSION, default by generation),
# --workdir (WORKDIR), --data (DATA), --config (CONFIG, default configs/acl_ecg_ptbxl.py),
# --repo (REPO_URL: git clone on the workers; default: copy this checkout), --ref (REPO_REF),
# --src (SRC: raw dataset on the workers, default ~/data/raw/ptb-xl), --spot (TPU_SPOT=1),
# --detach (DETACH=1: train under nohup, log in ~/acl_jax/train.log), --dry-run.
# `all` = create install prepare train teardown.
#
# Paths on the workers: --data, --workdir and --src are used on the TPU VMs, so `~` must mean
# the home directory THERE. Quote it ('~/data/ptbxl100') to pass it as is; an unquoted ~ that
# your shell already expanded to this machine's $HOME is passed as ~/... too (with a note on
# stderr), since the workers have no such directory (another user, or /Users on macOS).
#
# Multi-host slices run the same trainer command on every worker with --distributed (JAX finds
# the coordinator from the TPU metadata). Their checkpoints must live where every worker sees
# the same files (gs:// or a shared mount): see docs/gcs.md.
set -euo pipefail
cd "$(dirname "$0")/.."

project=${TPU_PROJECT:-} zone=${TPU_ZONE:-} accel=${TPU_ACCELERATOR:-} name=${TPU_NAME:-}
runtime=${TPU_RUNTIME_VERSION:-} workdir=${WORKDIR:-} data=${DATA:-}
config=${CONFIG:-configs/acl_ecg_ptbxl.py} repo=${REPO_URL:-} ref=${REPO_REF:-main}
src=${SRC:-'~/data/raw/ptb-xl'} spot=${TPU_SPOT:-0} detach=${DETACH:-0} dry=0
steps=() extra=()

die() { echo "tpu.sh: $*" >&2; exit 2; }
# The comment block above, without its '# ' (all of it, whatever its length).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

while (($#)); do
  case $1 in
    --project) project=${2:?--project needs a value}; shift ;;
    --zone) zone=${2:?--zone needs a value}; shift ;;
    --accelerator) accel=${2:?--accelerator needs a value}; shift ;;
    --name) name=${2:?--name needs a value}; shift ;;
    --runtime-version) runtime=${2:?--runtime-version needs a value}; shift ;;
    --workdir) workdir=${2:?--workdir needs a value}; shift ;;
    --data) data=${2:?--data needs a value}; shift ;;
    --config) config=${2:?--config needs a value}; shift ;;
    --repo) repo=${2:?--repo needs a value}; shift ;;
    --ref) ref=${2:?--ref needs a value}; shift ;;
    --src) src=${2:?--src needs a value}; shift ;;
    --spot) spot=1 ;;
    --detach) detach=1 ;;
    --dry-run) dry=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    create | install | prepare | train | resume | status | teardown) steps+=("$1") ;;
    all) steps+=(create install prepare train teardown) ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
((${#steps[@]})) || die "no subcommand: give one or more of create install prepare train resume status teardown all"

# A path under this machine's home as the workers see it: ~/REST, expanded by each worker's shell.
worker_path() { # worker_path FLAG VALUE
  local v=$2
  if [ -n "${HOME:-}" ] && [ "$HOME" != / ] && [[ $v == "$HOME"/* ]]; then
    # shellcheck disable=SC2088  # the ~ is for the worker's shell, not this one
    v="~/${v#"$HOME"/}"
    echo "# $1 $2 is under this machine's home; passed to the workers as $v" >&2
  fi
  echo "$v"
}
data=$(worker_path --data "$data") workdir=$(worker_path --workdir "$workdir")
src=$(worker_path --src "$src")

# Quote like a shell would need it, so that a printed command can be pasted back.
quote() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+%~-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
run() {
  echo "+ $(quote "$@")"
  ((dry)) || "$@"
}

# Hosts per slice: v2/v3/v4/v5p count TensorCores (8 per host); v5e/v6e count chips (4 per host
# above 8 chips, single host up to 8).
workers_of() {
  local gen=${1%-*} n=${1##*-}
  [[ $n =~ ^[0-9]+$ ]] || { echo "?"; return; }
  case $gen in
    v2 | v3 | v4 | v5p) echo $(((n + 7) / 8)) ;;
    v5litepod | v5e | v6e) if ((n <= 8)); then echo 1; else echo $((n / 4)); fi ;;
    *) echo "?" ;;
  esac
}
runtime_of() {
  case ${1%-*} in
    v5litepod | v5e) echo v2-alpha-tpuv5-lite ;;
    v5p) echo v2-alpha-tpuv5 ;;
    v6e) echo v2-alpha-tpuv6e ;;
    *) echo tpu-ubuntu2204-base ;;
  esac
}

need() { # need VALUE FLAG ENV SUBCOMMAND
  [ -n "$1" ] || die "$2 (or $3) is required for '$4'"
}
for s in "${steps[@]}"; do
  need "$project" --project TPU_PROJECT "$s"
  need "$zone" --zone TPU_ZONE "$s"
  if [ -z "$name" ]; then
    need "$accel" --accelerator TPU_ACCELERATOR "$s (or give --name)"
  fi
  case $s in
    create) need "$accel" --accelerator TPU_ACCELERATOR "$s" ;;
    prepare) need "$data" --data DATA "$s" ;;
    train | resume)
      need "$workdir" --workdir WORKDIR "$s"
      need "$data" --data DATA "$s"
      [ -f "$config" ] || die "--config $config does not exist in this checkout" ;;
  esac
done
name=${name:-acl-jax-$accel}
runtime=${runtime:-$(runtime_of "$accel")}
if ((!dry)) && ! command -v gcloud >/dev/null; then
  die "gcloud not found: install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install) and run 'gcloud auth login', or use --dry-run to print the commands"
fi
n_workers=$(workers_of "${accel:-?}")
echo "# TPU $name: ${accel:-existing} in $zone, project $project, $n_workers workers, runtime $runtime"
if [ -n "$workdir" ] && [[ $workdir != gs://* ]] && [ "$n_workers" != 1 ]; then
  echo "# warning: --workdir $workdir is on each worker's own disk; a multi-host checkpoint needs one shared location (gs:// or a shared mount), see docs/gcs.md" >&2
fi

where=(--project "$project" --zone "$zone")
on_all() { run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all --command "$1"; }
on_first() { run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=0 --command "$1"; }

# gs:// paths need gcsfs (etils.epath) and google-cloud-storage (TensorBoard): docs/gcs.md.
gcs_pkgs=""
if [[ $workdir == gs://* || $data == gs://* ]]; then gcs_pkgs=" gcsfs google-cloud-storage"; fi
# On the worker: Python >= 3.11 (the Ubuntu 22.04 images ship 3.10), a venv, acl_jax, jax[tpu].
# shellcheck disable=SC2016  # $PY expands on the worker, not here
py_setup='PY=python3; if ! $PY -c "import sys; sys.exit(sys.version_info < (3, 11))"; then sudo apt-get -qq update && sudo apt-get -qq install -y python3.11 python3.11-venv && PY=python3.11; fi'
install_cmd="set -e; $py_setup; cd ~/acl_jax; [ -x .venv/bin/python ] || \$PY -m venv .venv; .venv/bin/pip install -q -U pip; .venv/bin/pip install -q -e . 'jax[tpu]'$gcs_pkgs; .venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.devices()[0].device_kind)'"

do_install() {
  if [ -n "$repo" ]; then
    on_all "set -e; if [ -d ~/acl_jax/.git ]; then git -C ~/acl_jax fetch -q origin && git -C ~/acl_jax checkout -q $ref && git -C ~/acl_jax pull -q --ff-only || true; else git clone -q --branch $ref $repo ~/acl_jax; fi"
  else
    # This checkout as it is (uncommitted changes included), without venvs, runs or data.
    local tgz=${TMPDIR:-/tmp}/acl_jax_src.tgz
    run tar czf "$tgz" --exclude=.venv --exclude=.git --exclude=runs --exclude=data/prepared --exclude=__pycache__ .
    run gcloud compute tpus tpu-vm scp "$tgz" "$name:acl_jax_src.tgz" "${where[@]}" --worker=all
    on_all "set -e; mkdir -p ~/acl_jax && tar xzf ~/acl_jax_src.tgz -C ~/acl_jax && rm ~/acl_jax_src.tgz"
  fi
  on_all "$install_cmd"
}

do_prepare() {
  local prep="cd ~/acl_jax && .venv/bin/python -m acl_jax.download ptbxl --out $src --rate 100"
  if [[ $data == gs://* ]]; then
    # ArrayRecord shards are written to local disk; one worker prepares and uploads them.
    on_first "set -e; $prep && .venv/bin/python -m acl_jax.prepare --dataset ptbxl --src $src --out ~/prepared --fs 100 && gcloud storage rsync -r ~/prepared $data"
  else
    # Local --data: every worker prepares its own identical copy (the output is deterministic).
    on_all "set -e; $prep && .venv/bin/python -m acl_jax.prepare --dataset ptbxl --src $src --out $data --fs 100"
  fi
}

do_train() {
  local args cmd
  # `--config.data.dir PATH` as two words: the worker's shell expands a leading ~ only there.
  args=$(quote --config "$config" --workdir "$workdir" --config.data.dir "$data" --distributed "${extra[@]}")
  cmd="cd ~/acl_jax && .venv/bin/python -m acl_jax.train $args"
  if ((detach)); then
    cmd="cd ~/acl_jax && nohup .venv/bin/python -m acl_jax.train $args > train.log 2>&1 < /dev/null & echo started, log: ~/acl_jax/train.log"
  fi
  on_all "$cmd"
}

for s in "${steps[@]}"; do
  echo "# $s"
  case $s in
    create)
      flags=(--accelerator-type "$accel" --version "$runtime")
      ((spot)) && flags+=(--spot)
      run gcloud compute tpus tpu-vm create "$name" "${where[@]}" "${flags[@]}" ;;
    install) do_install ;;
    prepare) do_prepare ;;
    train) do_train ;;
    resume)
      echo "# resume: the trainer continues from the latest checkpoint in $workdir"
      do_train ;;
    status)
      run gcloud compute tpus tpu-vm describe "$name" "${where[@]}" --format='value(state,health,acceleratorType)'
      if [[ $workdir == gs://* ]]; then
        run gcloud storage ls "$workdir/checkpoints/"
      else
        on_first "tail -n 3 ~/acl_jax/train.log 2>/dev/null; ls ${workdir:-~/acl_jax/runs}/checkpoints 2>/dev/null || true"
      fi ;;
    teardown)
      if [ -n "$workdir" ] && [[ $workdir != gs://* ]]; then
        echo "# warning: $workdir is on the TPU VM's disk and is deleted with it" >&2
      fi
      run gcloud compute tpus tpu-vm delete "$name" "${where[@]}" --quiet ;;
  esac
done
