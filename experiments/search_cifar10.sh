#!/usr/bin/env bash
# The search pipeline's evidence on CIFAR-10: three budget-200 searches aimed at the main
# table's regime (experiments/configs/cifar10_cpu_w32.json, the search's --target-config),
# each with its confirmation stage, then the table on the exact test split, 5 seeds:
#   searched-best       joint search: augmentation + soft-target curve (autoaugment+soft), TPE
#   searched-hard-best  the same space minus the soft-target part (autoaugment), TPE
#   random-search-best  autoaugment+soft with uniform draws, same budget and confirmation: the
#                       fair control (does TPE beat random search?)
# beside none, baseline, autoaugment-cifar10, randaugment, trivialaugment, softaug and
# softcrop-hard (softaug's aggressive crop with hard labels: the control the seed paper's
# claims are measured against), then the seed paper's claims on that table (experiments/claims.py).
#
# Every step resumes: rerun the script after an interruption and it continues (searches
# with --resume keep finished trials and confirmation runs; finished table runs are skipped).
# Each search's wall time per stage is appended to OUT/wall_time.txt.
#
# Usage: bash experiments/search_cifar10.sh [RESULTS]     (AUTOSOFT_DATA set as in the README)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works without installing the package
PY=${PYTHON:-python}

RESULTS=${1:-experiments/results/search_cifar10_exact}
# 202 trials: the 5 baselines and 197 searched ones, as many searched trials as the first joint
# search had (search-joint-cut-epochs: the earlier proxy rule, 3 baselines of the time, then the
# 2 added since on a resume with --budget 202).
BUDGET=${BUDGET:-202}
TARGET=experiments/configs/cifar10_cpu_w32.json
mkdir -p "$RESULTS"

search () {  # search OUT SPACE SAMPLER
  local out=$1 space=$2 sampler=$3 resume=() start=$SECONDS
  [ -e "$out/search.json" ] && resume=(--resume)
  "$PY" -m autosoft.cli search --dataset cifar10 --budget "$BUDGET" --space "$space" --sampler "$sampler" \
    --target-config "$TARGET" --seed 0 --out "$out" "${resume[@]}" | tee -a "$out.log"
  echo "$space/$sampler: $((SECONDS - start)) s wall (this start)" | tee -a "$out/wall_time.txt"
}

# A search's row is its best searched policy after confirmation (best_searched.json): the
# exported policy.json is that one if it beat every baseline, else a baseline, whose row the
# table has already.
table () {  # table POLICY...
  "$PY" experiments/table.py --config "$TARGET" --results experiments/results/cifar10_w32_exact \
    --seeds 0 1 2 3 4 --readme README.md --policy none baseline autoaugment-cifar10 randaugment trivialaugment \
    softaug softcrop-hard=experiments/policies/softcrop-hard.json "$@" "searched-cut-epochs=$RESULTS/search-joint-cut-epochs/best_searched.json" \
    old-searched=experiments/results/search_cifar10/search-joint/policy.json \
    old-searched-hard=experiments/results/search_cifar10/search-hard/policy.json \
    old-random=experiments/results/search_cifar10/random-policy.json
}

# Ordered so that an interrupted session still leaves the most useful rows.
search "$RESULTS/search-joint" autoaugment+soft tpe
table "searched-best=$RESULTS/search-joint/best_searched.json"
search "$RESULTS/random-search" autoaugment+soft random
table "searched-best=$RESULTS/search-joint/best_searched.json" "random-search-best=$RESULTS/random-search/best_searched.json"
search "$RESULTS/search-hard" autoaugment tpe
table "searched-best=$RESULTS/search-joint/best_searched.json" "random-search-best=$RESULTS/random-search/best_searched.json" \
  "searched-hard-best=$RESULTS/search-hard/best_searched.json"
"$PY" experiments/claims.py --results experiments/results/cifar10_w32_exact --seeds 0 1 2 3 4 --baseline baseline \
  --pair softaug:softcrop-hard --pair searched-best:searched-hard-best --readme README.md --marker claims-cifar10
