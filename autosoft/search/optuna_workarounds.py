"""Optuna, adapted: every reach into its private parts and every workaround, each saying what it relies on.

Written for optuna 5.0.0, checked on 5.1.0. Optuna is imported inside the functions: importing
this module imports no Optuna. Here: attributes of another process's trial
(`set_trial_user_attr`), TPE's "experimental" warnings (`quiet_experimental_warnings`), an
NSGA-II sampler that Ray Tune can pickle (`picklable_nsga2_sampler`).
"""

from __future__ import annotations

import functools
import threading
import warnings
from contextlib import contextmanager


def set_trial_user_attr(study, trial, key: str, value) -> None:
    """Set an attribute on a trial this process did not ask for (one a killed process left RUNNING).

    optuna 5.0.0: `Trial.set_user_attr` needs the live Trial of the process that asked for it;
    the only way to reach a FrozenTrial read back from storage is `study._storage` with the
    trial's private `_trial_id`.
    """
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


@contextmanager
def quiet_experimental_warnings():
    """optuna 5.0.0 still marks TPE's multivariate and group options "experimental" and warns on
    every start; we use them on purpose (see `spaces.make_sampler`), so say nothing of it."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def picklable_nsga2_sampler(**kwargs):
    """optuna's NSGAIISampler(**kwargs), made so that Ray Tune can pickle it.

    optuna 5.1.0's genetic samplers hold a `threading.Lock` (`_thread_lock`, set in
    `optuna/samplers/_ga/_base.py`; 5.0.0 had none); `tune.Tuner` pickles its searcher, sampler
    included, and failed with "cannot pickle '_thread.lock' object". The pickle leaves the lock
    out and the copy makes a new one: a lock only guards the threads of its own process.
    """
    return _nsga2_class()(**kwargs)


@functools.cache
def _nsga2_class():
    import optuna

    class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
        def __reduce__(self):
            return _restore_nsga2, ({k: v for k, v in vars(self).items() if k != "_thread_lock"},)

    return PicklableNSGAIISampler


def _restore_nsga2(state: dict):
    cls = _nsga2_class()
    sampler = cls.__new__(cls)
    vars(sampler).update(state, _thread_lock=threading.Lock())
    return sampler
