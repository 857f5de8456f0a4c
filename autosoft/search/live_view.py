"""What a search shows while it runs: one live line in place of Ray Tune's console output.

Written for ray 2.60.0; Ray is imported inside the functions. Here: the Tune callback that
prints the state of the search and records each trial's error in the study
(`make_live_view`), a failed trial's exception as one line (`error_line`), and Tune's own
output made quiet (`quiet_tune`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from autosoft.search.trials import best_trial, complete_trials, state_counts


def error_line(trial) -> str:
    """The trial's exception as one line, e.g. 'TrainingDiverged: training diverged in epoch 2 ...'.

    ray 2.60.0: read from the files Tune has just written into the trial's local folder
    (`pickled_error_file`, `error_file`); its `get_error()` reads the storage copy, which
    may not be synced yet.
    """
    from ray import cloudpickle
    cause = None
    try:
        with open(trial.pickled_error_file, "rb") as f:
            error = cloudpickle.load(f)
        cause = getattr(error, "cause", None) or error
    except Exception:  # not picklable, or no file: fall back to the text trace
        pass
    if cause is not None:
        lines = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {lines[-1] if lines else ''}".strip()
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
        return lines[-1].strip()
    except Exception:
        return "the trial raised an error (see its error.txt under ray/)"


def make_live_view(searcher, *, budget: int, metric: str, mode: str, live: bool):
    """A Tune callback printing the state of the search, and recording each trial's error in the study."""
    from ray.tune import Callback

    tty = sys.stdout.isatty()

    class LiveView(Callback):
        """Trials finished / running / stopped / failed, best so far, time used: one line, rewritten in
        place on a terminal, a new line per change in a log."""

        def __init__(self):
            self.start = time.time()
            self.last = None

        def _show(self, trials, ended=None, note: str = "", started=None) -> None:
            if not live:
                return
            c = state_counts(searcher.study)
            # ray 2.60.0 calls on_trial_start before it marks the trial RUNNING
            running = sum((t.status == "RUNNING" or t is started) and t is not ended for t in trials)
            best = best_trial(complete_trials(searcher.study), mode)
            best = f"best {metric} {best.values[0]:.4f} (trial {best.number})" if best else "best -"
            line = (f"{sum(c.values())}/{budget} done ({c['stopped']} stopped early, "
                    f"{c['failed']} failed), {running} running | {best}")
            if line == self.last and not note:
                return
            self.last = line
            elapsed = int(time.time() - self.start)
            text = f"[search {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {line}"
            if note:
                print(("\r\033[K" if tty else "") + note, flush=True)
            print(("\r\033[K" + text) if tty else text, end="" if tty else "\n", flush=True)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._show(trials, started=trial)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._show(trials, trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            message = error_line(trial)
            searcher.record_error(trial.trial_id, message)
            self._show(trials, trial, f"trial {trial.config.get('trial_number', trial.trial_id)} failed: {message}")

        def on_experiment_end(self, trials, **info):
            if live and tty:
                print(flush=True)

    return LiveView()


class quiet_tune:
    """Our live line replaces Tune's console output.

    ray 2.60.0's default ("new") output engine prints its experiment table even at
    verbose=0; the legacy engine (RAY_AIR_NEW_OUTPUT=0) honours it. Tune also logs
    each failed trial with a full traceback: we print one line instead, and the
    trial keeps its error.txt under ray/.
    """

    def __enter__(self):
        self.env = os.environ.get("RAY_AIR_NEW_OUTPUT")
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        # tune_controller: a traceback per failed trial; tune: "Trials did not complete" (we report failures)
        self.loggers = [logging.getLogger(n) for n in ("ray.tune.execution.tune_controller", "ray.tune.tune")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)
        if self.env is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = self.env
