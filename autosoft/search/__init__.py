"""Joint search of the augmentation policy and its soft-target curve: `autosoft search`.

Ray Tune runs the trials (each one `autosoft.train.train` on a small proxy task),
Optuna proposes them (TPE, or NSGA-II for two objectives) and ASHA stops weak
ones early on the per-epoch validation score.

The Optuna study is the record of the search and the source of truth for
`--resume`: every trial's parameters, policy, metrics and state are committed to
its storage (sqlite in the output folder by default) as soon as the trial ends.
Ray Tune's own folders (``ray/run-N``, one per start) are logs, never read back.
A resumed search re-runs only the trials that were cut short (their policies are
enqueued again), never a finished one.

Modules, one job each (importing any of them imports neither Ray nor Optuna):
    spaces      load, join and sample search spaces; the sampler
    settings    budget, time limit, objectives, proxy task, baselines, the --resume check
    record      the Optuna study: storage, requeue, trial states, trials.csv, policy.json, plots
    compat      Ray Tune and Optuna adapters and workarounds (the only Ray-specific code)
    run         run_search, SearchResult

Output folder:
    search.json         the settings; --resume checks they match
    study.db            the Optuna study (unless --storage names another database)
    policy.json         the best policy, with provenance
    trials.csv          every trial: state, parameters, scores, epochs run, wall time
    search_history.png  score per trial and best so far
    pareto_front.png, pareto/   with two objectives: the front and its policies
    ray/run-N/          Ray Tune's logs of each start
"""

from autosoft.search.compat import init_ray
from autosoft.search.run import SearchResult, run_search
from autosoft.search.settings import OBJECTIVES, parse_objectives, parse_time_limit, proxy_config
from autosoft.search.spaces import (SPACE_NAMES, SPACES_DIR, SearchSpace, describe_spaces, load_space,
                                    make_sampler, sample_policies)

__all__ = [
    "OBJECTIVES", "SPACE_NAMES", "SPACES_DIR", "SearchResult", "SearchSpace", "describe_spaces", "init_ray",
    "load_space", "make_sampler", "parse_objectives", "parse_time_limit", "proxy_config", "run_search",
    "sample_policies",
]
