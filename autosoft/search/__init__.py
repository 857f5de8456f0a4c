"""Joint search of the augmentation policy and its soft-target curve: `autosoft search`.

The search knows its target (the training the policy is for) and derives its proxy task
from it. Ray Tune runs the trials (each one `autosoft.train.train` on the proxy), Optuna
proposes them (TPE, NSGA-II for two objectives, or uniform draws as the control) and ASHA
stops weak ones early on the per-epoch validation score. Every trial is scored on its
validation split by the objective, by default "robust": clean accuracy with occlusion and
shift accuracy (`autosoft.metrics.ROBUST_WEIGHTS`). Then the confirmation stage retrains the
best searched policies and the known baselines at the target's fidelity, all on one
validation split, and races them: S seeds each, clearly worse ones stop, the best and those
within noise of it get more seeds, paired, up to a cap. It exports the winner on the mean,
or the best baseline if no searched policy beat it on the seeds they share.

The Optuna study is the record of the search and the source of truth for
`--resume`: every trial's parameters, policy, metrics and state are committed to
its storage (sqlite in the output folder by default) as soon as the trial ends.
Ray Tune's own folders (``ray/run-N``, one per start) are logs, never read back.
A resumed search re-runs only the trials that were cut short (their policies are
enqueued again), never a finished one; finished confirmation runs are kept likewise.

Modules, one job each (importing any of them imports neither Ray nor Optuna):
    spaces      load, join and sample search spaces; the sampler
    proxy       the target, the proxy (derived from it, or a preset), the confirmation config, the chance check
    settings    budget, time limit, objectives, baselines, confirmation plan, the --resume check
    trials      a trial's state, the counts that spend the budget, the best trial
    record      the Optuna study: storage, requeue, trials.csv, policy files, plots
    confirm     the confirmation stage: candidates, runs on Ray, verdict, confirm.csv and confirm.png
    racing      which confirmation runs come next: the paired test, who stops, who gets more seeds
    rungs       successive halving over train images (--rungs): who is promoted, the rung runs, Spearman per rung
    ray_cluster starting Ray or joining a cluster: the address, token authentication, one-line errors
    tune_glue   Ray Tune adapted: trial resources, the trainable, the searcher (the record in the study), ASHA
    live_view   the one live line that replaces Tune's console output; a failed trial's error in one line
    optuna_workarounds  Optuna adapted: another process's trial, TPE's warnings, a picklable NSGA-II
    run         run_search, SearchResult

Output folder:
    search.json         the settings (target, derived proxy and its rules); --resume checks they match
    study.db            the Optuna study (unless --storage names another database)
    policy.json         the exported policy: the confirmation winner (else the proxy's best), with provenance
    proxy_best.json     the proxy's best trial, when a confirmation stage ran
    best_searched.json  the confirmation's best searched policy (policy.json too, unless a baseline beat it)
    trials.csv          every trial: state, parameters, scores, epochs run, wall time
    confirm.csv, confirm.png, confirm/NAME-sSEED/   the confirmation scores and runs
    rungs.csv, rungs/COST/NAME-sSEED/   with --rungs: each promoted policy's score per rung, and the rung runs
    search_history.png  score per trial and best so far
    wall_times.jsonl    wall seconds of each stage (trials, confirmation), one line per start, kept
                        current while it runs ("running": true on a start killed before it ended),
                        with the host and pid of the start
    pareto_front.png, pareto/   with two objectives: the front and its policies
    ray/run-N/          Ray Tune's logs of each start
"""

from autosoft.search.ray_cluster import init_ray
from autosoft.search.run import SearchResult, run_search
from autosoft.search.proxy import proxy_config
from autosoft.search.settings import OBJECTIVES, parse_objectives, parse_time_limit
from autosoft.search.spaces import (SPACE_NAMES, SPACES_DIR, SearchSpace, describe_spaces, load_space,
                                    make_sampler, sample_policies)

__all__ = [
    "OBJECTIVES", "SPACE_NAMES", "SPACES_DIR", "SearchResult", "SearchSpace", "describe_spaces", "init_ray",
    "load_space", "make_sampler", "parse_objectives", "parse_time_limit", "proxy_config", "run_search",
    "sample_policies",
]
