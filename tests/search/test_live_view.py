"""autosoft.search.live_view: the live line counts what Ray Tune runs, as its callbacks see it."""

from types import SimpleNamespace

import optuna

from autosoft.search.live_view import make_live_view


def _trial(status: str):
    return SimpleNamespace(status=status, trial_id=status, config={})


def test_the_line_counts_a_trial_starting_and_not_one_ending(capsys):
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.25, params={}, distributions={}))
    view = make_live_view(SimpleNamespace(study=study), budget=10, metric="val_acc", mode="max", live=True)
    first, second = _trial("RUNNING"), _trial("PENDING")
    # ray 2.60.0 calls on_trial_start while the trial is still PENDING: it counts as running
    view.on_trial_start(0, [first, second], second)
    second.status = "RUNNING"                              # what Tune sets right after
    view.on_trial_complete(1, [first, second], first)     # the ended trial no longer counts
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "1/10 done (0 stopped early, 0 failed), 2 running | best val_acc 0.2500 (trial 0)",
        "1/10 done (0 stopped early, 0 failed), 1 running | best val_acc 0.2500 (trial 0)"]
