#!/usr/bin/env bash
# Budget-200 policy search on CIFAR-10 with the CPU proxy, then the comparison table.
#
# Three policies from the same space and budget, retrained with the baseline tables'
# schedules: the width-16 regime the searches' proxy uses (experiments/configs/cifar10_cpu.json,
# seeds 0-2) and the less capacity-bound width-32 regime (experiments/configs/cifar10_cpu_w32.json,
# seeds 0-4, the README's main table):
#   searched   joint search: augmentation + soft-target curve (autoaugment+soft)
#   hard       the same space minus the soft-target part (autoaugment), same budget
#   random     one policy drawn uniformly from autoaugment+soft: does the search beat chance?
#
# Every step resumes: rerun the script after an interruption and it continues
# (searches with --resume, finished training runs are skipped).
# Wall time of each search is printed by its live line and kept in OUT/trials.csv.
#
# Usage: AUTOSOFT_DATA=/path/to/data bash experiments/search_cifar10.sh [RESULTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works without installing the package
PY=${PYTHON:-python}

RESULTS=${1:-experiments/results/search_cifar10}
BUDGET=${BUDGET:-200}
mkdir -p "$RESULTS"

search () {  # search OUT SPACE
  local out=$1 space=$2 resume=() start=$SECONDS
  [ -e "$out" ] && resume=(--resume)
  "$PY" -m autosoft.cli search --dataset cifar10 --budget "$BUDGET" --space "$space" --proxy cpu \
    --seed 0 --out "$out" "${resume[@]}"
  echo "$space search: $((SECONDS - start)) s wall (this start)" | tee -a "$out/wall_time.txt"
}

TABLE=(experiments/table.py --config experiments/configs/cifar10_cpu.json
       --results experiments/results/cifar10_cpu --seeds 0 1 2
       --policy baseline autoaugment-cifar10 randaugment trivialaugment softaug)

# Ordered so that an interrupted session still leaves the most useful rows:
# the joint search, the baselines and the searched policy, the random control, then the hard-label search.
search "$RESULTS/search-joint" autoaugment+soft
"$PY" "${TABLE[@]}" "searched=$RESULTS/search-joint/policy.json"
[ -e "$RESULTS/random-policy.json" ] || \
  "$PY" experiments/search_random_policy.py --space autoaugment+soft --seed 0 --out "$RESULTS/random-policy.json"
"$PY" "${TABLE[@]}" "searched=$RESULTS/search-joint/policy.json" "random=$RESULTS/random-policy.json"
search "$RESULTS/search-hard" autoaugment
"$PY" "${TABLE[@]}" "searched=$RESULTS/search-joint/policy.json" "random=$RESULTS/random-policy.json" \
  "searched-hard=$RESULTS/search-hard/policy.json"
"$PY" experiments/table.py --config experiments/configs/cifar10_cpu_w32.json \
  --results experiments/results/cifar10_cpu_w32 --seeds 0 1 2 3 4 \
  --policy baseline autoaugment-cifar10 randaugment trivialaugment softaug \
  "searched=$RESULTS/search-joint/policy.json" "random=$RESULTS/random-policy.json" \
  "searched-hard=$RESULTS/search-hard/policy.json"
