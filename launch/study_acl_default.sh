#!/usr/bin/env bash
# Issue 15's study on PTB-XL 100 Hz, development split (train folds 1-6, val 7, test 8): which
# ACL-ECG region objective to run, how it compares with the baselines, and where pretraining pays.
#
#   PTBXL=/path/to/ptb-xl bash launch/study_acl_default.sh [STAGE ...]   # default: every stage
#
# Stages (each skips what is done: finished runs, rows and seeds already in a table; a killed
# stage resumes from its checkpoints when rerun):
#   seeds  bench/compare_methods.py: 9 rows x 3 seeds, 1,500 steps each, linear probe
#          -> bench/results/compare_seeds_1500.{json,md,png} (+ _scores/, kept per-record scores)
#   w500   the same for 5 s windows (data.window=500) of the chosen default, SimCLR and DLC
#          (CMSC's own config already uses 5 s) -> bench/results/compare_seeds_1500_w500.*
#   choose bench/choose_default.py: the ACL-ECG row with the best mean VAL macro AUROC over the
#          3 seeds -> $ROOT/chosen_default.json (its config overrides)
#   long   the chosen default pretrained for LONG_STEPS steps -> $ROOT/long_default; its final
#          checkpoint (all items, 2.1 MB: it resumes), its metrics thinned and its loss plot are
#          kept in the repo, bench/results/long_default/, so that `label` runs on a later machine
#   label  bench/label_efficiency.py on that kept run: superdiagnostic and all, 1/5/10/100% of the
#          train labels, linear probe / fine-tune (recipe chosen on val) / from scratch /
#          untrained, 3 label-subset seeds -> bench/results/label_efficiency.{json,md,png}
# Wall time on a quiet 2-core CPU: seeds 16-25 min per run; long 75 min at 9,000 steps (512
# samples/s); label: 35 s per linear probe, 1.5-4.5 min per fine-tune (early-stopped; 2,000
# steps at most): 19 min for superdiagnostic at 1% with 3 seeds, 31 min at 10%; the all task
# (71 classes) 50-55 s per linear probe, 2-6 min per fine-tune: 28 min at 1%, 40 min at 10%;
# superdiagnostic at 100%: 5-9 min per fine-tune, 56 min (beside the test suite for part); all
# at 100%: 1-1.3 min per linear probe, 3.5-6 min per fine-tune, 48 min; 5%: 25 min
# superdiagnostic, 36 min all. w500: 30-33 min per run (5 s windows, 0.76 steps/s for ACL-ECG).
# Environment: PTBXL (the PTB-XL folder with ptbxl_database.csv and records100/), ROOT
# (runs/study), DATA ($ROOT/data/ptbxl100_dev), LONG_STEPS (9000), TASKS (superdiagnostic,all),
# FRACTIONS (0.01,0.05,0.1,1.0).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${ROOT:-runs/study}
data=${DATA:-$root/data/ptbxl100_dev}
long_steps=${LONG_STEPS:-9000}
kept=bench/results/long_default  # the long run's final checkpoint, kept in the repo
py=.venv/bin/python
run() { echo "+ $*"; "$@"; }
rows=acl_ecg:region_objective=within_record,simclr,cmsc,dlc,random_init
rows+=,acl_ecg:region_objective=within_record_raw,acl_ecg:region_objective=inter_alignment
rows+=,acl_ecg:region_heads=true,acl_ecg:w_inter=0
# The chosen default's config overrides (KEY=VALUE), joined by $1: "--config." flags or ":".
chosen() {
  "$py" -c 'import json, sys
print(sys.argv[2].join(json.load(open(sys.argv[1]))["chosen"]["overrides"]))' \
    "$root/chosen_default.json" "$1"
}

stage_prepare() {
  [ -f "$data/manifest.json" ] && return
  run "$py" -m acl_jax.prepare --dataset ptbxl \
      --src "${PTBXL:?set PTBXL to the PTB-XL folder (ptbxl_database.csv, records100/)}" \
      --out "$data" --fs 100 --splits train=1-6,val=7,test=8
}
stage_seeds() {
  run "$py" bench/compare_methods.py --data "$data" --steps 1500 --seeds 3 \
      --reference acl_ecg:region_objective=within_record --methods "$rows" \
      --workroot "$root/cmp1500" --out bench/results/compare_seeds_1500
}
stage_choose() {
  run "$py" bench/choose_default.py bench/results/compare_seeds_1500.json --seeds 3 \
      --out "$root/chosen_default.json"
}
stage_w500() {
  local keys acl
  keys=$(chosen :)
  acl="acl_ecg_w500=acl_ecg:data.window=500${keys:+:$keys}"
  run "$py" bench/compare_methods.py --data "$data" --steps 1500 --seeds 3 --methods "" \
      --ablations "$acl,simclr_w500=simclr:data.window=500,dlc_w500=dlc:data.window=500" \
      --reference acl_ecg_w500 --workroot "$root/cmp1500_w500" \
      --out bench/results/compare_seeds_1500_w500
}
stage_long() {
  local keys flags=()
  if [ -d "$kept/checkpoints/$long_steps" ]; then
    echo "long: kept in $kept (step $long_steps)"
    return
  fi
  keys=$(chosen " --config.")
  [ -z "$keys" ] || read -r -a flags <<<"--config.$keys"
  run "$py" -m acl_jax.train --config configs/acl_ecg_ptbxl.py --workdir "$root/long_default" \
      --config.data.dir="$data" --config.train.steps="$long_steps" \
      --config.train.steps_per_call=5 "${flags[@]}"
  # Keep the final checkpoint (the one Orbax restores: the highest step) and the training log.
  local last
  last=$(find "$root/long_default/checkpoints" -mindepth 1 -maxdepth 1 -name '[0-9]*' -printf '%f\n' |
    sort -n | tail -1)
  rm -rf "$kept" && mkdir -p "$kept/checkpoints"
  cp -r "$root/long_default/checkpoints/$last" "$kept/checkpoints/"
  # The training log thinned to every 10th step and step 1 (3.4 MB -> 0.3 MB at 9,000 steps).
  "$py" -c 'import json, sys
for line in open(sys.argv[1]):
    if (step := json.loads(line)["step"]) % 10 == 0 or step == 1:
        print(line, end="")' "$root/long_default/metrics.jsonl" >"$kept/metrics.jsonl"
  run "$py" -m acl_jax.train.curves "$kept" --out "$kept/loss.png"
}
stage_label() {
  [ -d "$kept/checkpoints" ] || { echo "study_acl_default: run the long stage first" >&2; exit 2; }
  run "$py" bench/label_efficiency.py --workdir "$kept" --data "$data" \
      --tasks "${TASKS:-superdiagnostic,all}" --fractions "${FRACTIONS:-0.01,0.05,0.1,1.0}" \
      --seeds 3 --runs "$root/label_efficiency_runs" --out bench/results/label_efficiency
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(seeds choose long label w500)
stage_prepare
for s in "${stages[@]}"; do
  case $s in
    seeds | choose | w500 | long | label) "stage_$s" ;;
    *) echo "study_acl_default: unknown stage $s (seeds, choose, w500, long, label)" >&2; exit 2 ;;
  esac
done
