"""A trial's state, the budget's counts and the best trial, on an in-memory Optuna study."""

import math
import sys

import optuna
from optuna.trial import TrialState

from autosoft.search.trials import COUNTED, best_trial, complete_trials, finite, state_counts, trial_state

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_states_counts_and_the_best():
    study = optuna.create_study()
    for value in (0.5, 0.75):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    killed = study.ask()
    killed.set_user_attr("interrupted", True)
    running = study.ask()
    study.enqueue_trial({})
    trials = study.get_trials()
    assert [trial_state(t) for t in trials] == ["complete", "complete", "stopped", "failed", "interrupted",
                                                "running", "waiting"]
    assert running.number == 5 and set(state_counts(study)) == set(COUNTED)
    assert state_counts(study) == {"complete": 2, "stopped": 1, "failed": 1}  # interrupted, running: not counted
    assert [t.number for t in complete_trials(study)] == [0, 1]
    assert best_trial(complete_trials(study), "max").number == 1
    assert best_trial(complete_trials(study), "min").number == 0
    assert best_trial([], "max") is None


def test_finite_is_a_real_number():
    assert finite(0) and finite(0.5) and finite(-sys.float_info.max)
    assert not any(finite(v) for v in (math.nan, math.inf, -math.inf, True, None, "0.5"))
