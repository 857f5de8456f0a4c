#!/usr/bin/env bash
# Pilot for the CIFAR-100 CPU regime (issue 11): in which regime does augmentation pay and is
# the table stable (seed std well below the gaps between policies)? Two candidates, both the
# width-32 proxy net (the CIFAR-10 table's model), one-cycle SGD, batch 256:
#   n10k_e40   10,000 train images (100 a class), 40 epochs  (400k images seen, ~2x the CIFAR-10 table)
#   n20k_e30   20,000 train images (200 a class), 30 epochs  (600k images seen, ~3x)
# Fewer than 100 images a class was not tried: 50 a class leaves too little to learn 100 classes
# from in a CPU budget, and augmentation's gain is then mostly noise.
# Each regime: baseline, trivialaugment (strong augmentation) and softaug (the seed paper's
# soft crop), 2 seeds, scored on a dev split of 5,000 train images held out, the same for
# every run (`table.py --split dev`; issue #24 item 4: design studies never touch test). The
# regime is chosen by the smallest of |top-1 gap to the baseline| / pooled seed std over the
# two augmenting policies, at the lower cost when both clear 3 (written down in
# experiments/results/pilot_cifar100/README.md).
# The first pilot (experiments/results/pilot_cifar100/n10k_e40/, before item 4) scored on the
# exact test split; its README says what its runs' own 2,000-image validation splits say.
#
# Resumable: finished runs are skipped.   Usage: bash experiments/pilot_cifar100.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
for regime in n10k_e40 n20k_e30; do
  "$PY" experiments/table.py --split dev --config "experiments/configs/cifar100_cpu_w32_$regime.json" \
    --results "experiments/results/pilot_cifar100_dev/$regime" --seeds 0 1 \
    --policy baseline trivialaugment softaug
done
