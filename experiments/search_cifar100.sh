#!/usr/bin/env bash
# The headline on CIFAR-100 (issue 11), with its evidence (experiments/search_evidence.sh says
# what it runs): `autosoft search --dataset cifar100 --budget 200` as a user types it, aimed at
# the CPU regime the pilot chose (experiments/configs/cifar100_cpu_w32_n10k_e40.json: width-32
# proxy net, 10,000 train images, 40 epochs; experiments/results/pilot_cifar100/README.md says
# why), four times with the racing confirmation and the robust objective (issue #24; rows race-*:
# joint TPE, joint TPE on clean accuracy, random search, hard-label TPE), the joint search's policy
# retrained with `autosoft train --policy`, then the table at 3 seeds and the seed paper's
# claims, beside the rows of the pipeline before issue #24 (search_cifar100/). Budget 200: the
# user's command (the 5 baselines and 195 searched trials).
#
# Usage: bash experiments/search_cifar100.sh [RESULTS]    (AUTOSOFT_DATA set as in the README; resumable)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-experiments/results/search_cifar100_race}
PREV=experiments/results/search_cifar100
BUDGET=${BUDGET:-200} ROW_PREFIX=race- exec bash experiments/search_evidence.sh cifar100 \
  experiments/configs/cifar100_cpu_w32_n10k_e40.json experiments/results/cifar100_w32 "$RESULTS" "0 1 2" table-cifar100 \
  "searched-best=$PREV/search-joint/best_searched.json" \
  "random-search-best=$PREV/random-search/best_searched.json" \
  "searched-hard-best=$PREV/search-hard/best_searched.json"
