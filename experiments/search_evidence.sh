#!/usr/bin/env bash
# The search pipeline's evidence on one data set: the searches below aimed at a table's regime (its
# config is the search's --target-config), each with its confirmation stage, then the table on
# the exact test split:
#   searched-best       joint search: augmentation + soft-target curve (autoaugment+soft), TPE,
#                       the default objective (robust: clean, occlusion and shift accuracy)
#   searched-acc-best   the same search on clean validation accuracy alone (--objective acc)
#   searched-aa-soft-best  the published AutoAugment ops kept, only the crop and the soft-target
#                       curve searched (--space autoaugment-cifar10+soft, --objective acc,
#                       AA_SOFT_BUDGET trials): do soft targets, tuned, lift AutoAugment itself?
#   searched-cost16-best  the joint search with trials at 1/16 of the target's cost (--proxy-cost
#                       1/16: a sixteenth of its images at its epochs) instead of a quarter, as a
#                       user runs it (nothing reused): is the cheaper pipeline's policy as good?
#   searched-halving-best  successive halving over train images (--rungs 1/16,1/4): the cost16
#                       search's trials (its folder's study: the same first stage, same proxy,
#                       seed and sampler), their best quarter and the baselines retrained at 1/4
#                       of the target's cost, the race over that rung's best: does the 1/4 rung
#                       win back what trials at 1/16 lose, at less than the 1/4 pipeline's time?
#   random-search-best  autoaugment+soft with uniform draws, same budget and confirmation: the
#                       fair control (does TPE beat random search?)
#   searched-hard-best  the same space minus the soft-target part (autoaugment), TPE
# beside none, baseline, autoaugment-cifar10, randaugment, trivialaugment, softaug and
# softcrop-hard (softaug's aggressive crop with hard labels: the control the seed paper's
# claims are measured against), then the seed paper's claims on that table (experiments/claims.py),
# the clean-against-robust frontier of the races' confirmed policies (experiments/race_frontier.py)
# and each pipeline's wall time per stage and seeds per policy (experiments/pipeline_costs.py).
# A search's row is its best searched policy after confirmation (best_searched.json): the
# exported policy.json is that one if it beat every baseline, else a baseline, whose row the
# table has already.
#
# After the joint search, its exported policy.json is retrained with `autosoft train --policy`
# (SEARCH_DIR/retrain-joint-s0/), the headline's last step as a user runs it.
#
# Every step resumes: rerun after an interruption and it continues (searches with --resume keep
# finished trials and confirmation runs; a search whose confirmation is done and finished table
# runs are skipped, so a rerun over finished work changes no file). Each search's wall time per
# stage and start is in its OUT/wall_times.jsonl (the search writes it). Called by
# search_cifar10.sh and search_cifar100.sh, which fix the arguments:
#
#   bash experiments/search_evidence.sh DATASET TARGET TABLE_DIR SEARCH_DIR SEEDS MARKER [ROW...]
#
# SEEDS: the table's seeds ("0 1 2"); MARKER: experiments/RESULTS.md's table markers (<!-- MARKER:start -->),
# the claims go between <!-- claims-DATASET:... -->; ROW: more table rows (NAME=POLICY.json).
# Env: BUDGET (default 202: the 5 baselines and 197 searched trials), AA_SOFT_BUDGET (default 50:
# the soft part alone has 9 parameters, 11 with its conditional ones), ROW_PREFIX, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works without installing the package
PY=${PYTHON:-python}
[ $# -ge 6 ] || { echo "usage: $0 DATASET TARGET TABLE_DIR SEARCH_DIR SEEDS MARKER [ROW...]" >&2; exit 2; }
DATASET=$1 TARGET=$2 TABLE=$3 RESULTS=$4 MARKER=$6
read -r -a SEEDS <<< "$5"
shift 6
EXTRA=("$@")
BUDGET=${BUDGET:-202}
AA_SOFT_BUDGET=${AA_SOFT_BUDGET:-50}
mkdir -p "$RESULTS"

search () {  # search OUT SPACE SAMPLER [FLAG...]   (BUDGET=N search ... for another budget)
  local out=$1 space=$2 sampler=$3 resume=()
  shift 3
  # confirm.csv is written only once every trial has finished, policy.json after it: both = done.
  if [ -e "$out/confirm.csv" ] && [ -e "$out/policy.json" ]; then
    echo "$out: finished (confirm.csv, policy.json), skipped"
    return
  fi
  [ -e "$out/search.json" ] && resume=(--resume)
  "$PY" -m autosoft.cli search --dataset "$DATASET" --budget "$BUDGET" --space "$space" --sampler "$sampler" \
    --target-config "$TARGET" --seed 0 --out "$out" "${resume[@]}" "$@" | tee -a "$out.log"
}

retrain () {  # the headline's last step, as a user runs it: the exported policy retrained on the target
  local out=$RESULTS/retrain-joint-s0 start=$SECONDS
  [ -e "$out/final.json" ] && return
  "$PY" -m autosoft.cli train --dataset "$DATASET" --config "$TARGET" --policy "$RESULTS/search-joint/policy.json" \
    --out "$out" --quiet | tee -a "$out.log"
  echo "retrain: $((SECONDS - start)) s wall (this start)" | tee -a "$out.log"
}

table () {  # table ROW...
  "$PY" experiments/table.py --config "$TARGET" --results "$TABLE" --seeds "${SEEDS[@]}" --doc experiments/RESULTS.md \
    --marker "$MARKER" --policy none baseline autoaugment-cifar10 randaugment trivialaugment softaug \
    softcrop-hard=experiments/policies/softcrop-hard.json "$@" "${EXTRA[@]}"
}

# Ordered so that an interrupted session still leaves the most useful rows. ROW_PREFIX names
# this pipeline's rows (e.g. "race-"), so that they stand beside an earlier pipeline's rows in
# the same table folder, whose fixed-policy runs they share.
P=${ROW_PREFIX:-}
joint="${P}searched-best=$RESULTS/search-joint/best_searched.json"
acc="${P}searched-acc-best=$RESULTS/search-joint-acc/best_searched.json"
aa_soft="${P}searched-aa-soft-best=$RESULTS/search-aa-soft/best_searched.json"
cost16="${P}searched-cost16-best=$RESULTS/search-joint-cost16/best_searched.json"
halving="${P}searched-halving-best=$RESULTS/search-joint-halving/best_searched.json"
random="${P}random-search-best=$RESULTS/random-search/best_searched.json"
hard="${P}searched-hard-best=$RESULTS/search-hard/best_searched.json"
search "$RESULTS/search-joint" autoaugment+soft tpe   # the default objective, as a user runs it
retrain
table "$joint"
# The controls confirm the same baselines at the same seeds and target: their runs are copied
# from the joint search's (--reuse-confirmation), not trained again. The first is the same
# search scored on clean validation accuracy alone: what the default objective must beat.
search "$RESULTS/search-joint-acc" autoaugment+soft tpe --objective acc --reuse-confirmation "$RESULTS/search-joint"
rows=("$joint" "$acc")
table "${rows[@]}"
if [ "$DATASET" = cifar10 ]; then  # the published CIFAR-10 policy's own ops, its targets searched
  BUDGET=$AA_SOFT_BUDGET search "$RESULTS/search-aa-soft" autoaugment-cifar10+soft tpe --objective acc \
    --reuse-confirmation "$RESULTS/search-joint"
  rows+=("$aa_soft")
  table "${rows[@]}"
  # Multi-fidelity by images (issue #24): on this search's confirmed policies, trials at 1/16
  # ranked them as well as at 1/4 (experiments/fidelity_rungs.py), 2.7x cheaper a trial.
  search "$RESULTS/search-joint-cost16" autoaugment+soft tpe --proxy-cost 1/16
  rows+=("$cost16")
  table "${rows[@]}"
  # Successive halving (issue #24 item 3) on top of those trials: `--rungs 1/16,1/4` runs the
  # same trials first, so the cost16 study is copied in (once) rather than trained again.
  if [ ! -e "$RESULTS/search-joint-halving/search.json" ]; then
    mkdir -p "$RESULTS/search-joint-halving"
    cp "$RESULTS/search-joint-cost16/search.json" "$RESULTS/search-joint-cost16/study.db" "$RESULTS/search-joint-halving/"
    # ... and the trials' wall time with them, marked as copied (pipeline_costs.py counts it)
    "$PY" - "$RESULTS/search-joint-cost16/wall_times.jsonl" "$RESULTS/search-joint-halving/wall_times.jsonl" <<'PYEOF'
import json, sys
starts = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
copied = {"started": starts[0]["started"], "trials": round(sum(s.get("trials", 0.0) for s in starts), 1),
          "copied_from": "search-joint-cost16"}
with open(sys.argv[2], "a") as f:
    f.write(json.dumps(copied) + "\n")
PYEOF
  fi
  search "$RESULTS/search-joint-halving" autoaugment+soft tpe --rungs 1/16,1/4 \
    --reuse-confirmation "$RESULTS/search-joint-cost16" --reuse-confirmation "$RESULTS/search-joint"
  rows+=("$halving")
  table "${rows[@]}"
fi
search "$RESULTS/random-search" autoaugment+soft random --reuse-confirmation "$RESULTS/search-joint"
rows+=("$random")
table "${rows[@]}"
search "$RESULTS/search-hard" autoaugment tpe --reuse-confirmation "$RESULTS/search-joint"
rows+=("$hard")
table "${rows[@]}"
"$PY" experiments/claims.py --results "$TABLE" --seeds "${SEEDS[@]}" --baseline baseline \
  --pair softaug:softcrop-hard --pair "${P}searched-best:${P}searched-hard-best" --doc experiments/RESULTS.md \
  --marker "claims-$DATASET"
# Clean against robust validation accuracy of every policy the finished races confirmed
# (experiments/race_frontier.py; validation only): is any ahead of AutoAugment on clean accuracy?
# Then what each pipeline cost: wall time per stage, seeds per policy (experiments/pipeline_costs.py).
frontier=()
for name in search-joint search-joint-acc search-aa-soft search-joint-cost16 search-joint-halving random-search search-hard; do
  [ -e "$RESULTS/$name/confirm.csv" ] && frontier+=("$RESULTS/$name")
done
"$PY" experiments/race_frontier.py "${frontier[@]}" --doc experiments/RESULTS.md --marker "frontier-$DATASET"
"$PY" experiments/pipeline_costs.py "${frontier[@]}" --doc experiments/RESULTS.md --marker "costs-$DATASET"
