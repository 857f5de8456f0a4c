"""A trial as the record reads it: its state, the counts that spend the budget, the best one.

What the study's record (`autosoft.search.record`) and the Tune glue (`tune_glue`,
`live_view`) share about Optuna trials; it needs no Ray, and Optuna only for its trial states.
"""

from __future__ import annotations

import math

# A trial's state as trials.csv names it. Only these count towards the budget:
COUNTED = ("complete", "stopped", "failed")
# "interrupted": cut short by a kill, Ctrl-C or the time limit; its policy was enqueued again.
_NAMES = {"COMPLETE": "complete", "PRUNED": "stopped", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "waiting"}


def trial_state(trial) -> str:
    """complete | stopped (by ASHA) | failed | interrupted | running | waiting: the one classification."""
    if trial.user_attrs.get("interrupted"):
        return "interrupted"
    return _NAMES.get(trial.state.name, trial.state.name.lower())


def state_counts(study) -> dict[str, int]:
    """How many trials are complete, stopped and failed (the ones that count towards the budget)."""
    counts = dict.fromkeys(COUNTED, 0)
    for t in study.get_trials(deepcopy=False):
        state = trial_state(t)
        if state in counts:
            counts[state] += 1
    return counts


def best_trial(trials, mode: str):
    """The trial with the best first objective (`mode` "max" or "min"), or None."""
    pick = max if mode == "max" else min
    return pick(trials, key=lambda t: t.values[0], default=None)


def complete_trials(study) -> list:
    from optuna.trial import TrialState
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def finite(v) -> bool:
    """A real number that is neither NaN nor infinite (what a score must be to be recorded)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
