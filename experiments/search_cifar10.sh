#!/usr/bin/env bash
# The search pipeline's evidence on CIFAR-10 (experiments/search_evidence.sh says what it runs):
# four budget-202 searches aimed at the main table's regime
# (experiments/configs/cifar10_cpu_w32.json) with the racing confirmation and the robust
# objective (issue #24), and a budget-50 one of the soft-target curve on AutoAugment's own ops,
# rows race-*, then that table, 5 seeds, with the earlier pipelines' rows kept beside them
# (their runs are in the same table folder):
#   searched-best, random-search-best, searched-hard-best   the pipeline before issue #24 (clean
#                        accuracy, 2 seeds per confirmed policy, a split per seed; search_cifar10_exact/)
#   searched-cut-epochs  the first joint search of the confirmation pipeline (the target's epochs cut 4x)
#   old-*                the pipeline before that (a fixed width-16 proxy, no confirmation)
# 202 trials: the 5 baselines and 197 searched ones, as many searched trials as the first joint
# search had (search-joint-cut-epochs: 3 baselines of the time, then the 2 added since on a
# resume with --budget 202).
#
# Usage: bash experiments/search_cifar10.sh [RESULTS]     (AUTOSOFT_DATA set as in the README; resumable)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-experiments/results/search_cifar10_race}
PREV=experiments/results/search_cifar10_exact
BUDGET=${BUDGET:-202} ROW_PREFIX=race- exec bash experiments/search_evidence.sh cifar10 \
  experiments/configs/cifar10_cpu_w32.json experiments/results/cifar10_w32_exact "$RESULTS" "0 1 2 3 4" table \
  "searched-best=$PREV/search-joint/best_searched.json" \
  "random-search-best=$PREV/random-search/best_searched.json" \
  "searched-hard-best=$PREV/search-hard/best_searched.json" \
  "searched-cut-epochs=$PREV/search-joint-cut-epochs/best_searched.json" \
  old-searched=experiments/results/search_cifar10/search-joint/policy.json \
  old-searched-hard=experiments/results/search_cifar10/search-hard/policy.json \
  old-random=experiments/results/search_cifar10/random-policy.json
