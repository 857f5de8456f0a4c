"""The study record without Ray: a real sqlite Optuna study with trials of every state."""

import csv
import json
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from autosoft.errors import AutosoftError
from autosoft.policy import load_policy
from autosoft.search import record
from autosoft.search.trials import best_trial, complete_trials, state_counts, trial_state

optuna.logging.set_verbosity(optuna.logging.WARNING)
SOFTAUG = load_policy("softaug").to_dict()
SETTINGS = {"dataset": "cifar10", "space": "randaugment+soft", "proxy": {"epochs": 2}, "seed": 7, "budget": 6}


@pytest.fixture
def no_ray(monkeypatch):
    """Any `import ray` in the test fails: the record must not need Ray."""
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")] + ["ray"]:
        monkeypatch.setitem(sys.modules, name, None)


def _finish(study, trial, state, *, value=None, epochs=2, error=None, policy=SOFTAUG):
    trial.set_user_attr("policy", policy)
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr("wall_time_s", 1.5)
    if value is not None:
        trial.set_user_attr("metrics", {"val_acc": value, "train_loss": 2.0})
    if error:
        trial.set_user_attr("error", error)
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    elif state is not None:
        study.tell(trial, state=state)


def _study(tmp_path):
    """0 baseline complete, 1 searched complete (best), 2 stopped by ASHA, 3 failed, 4 left running."""
    storage = record.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = record.open_study(storage, "s", ["max"], ["baseline"])
    base = study.ask()
    assert base.user_attrs["fixed_policy"] == "baseline" and not base.params
    _finish(study, base, TrialState.COMPLETE, value=0.5, policy=load_policy("baseline").to_dict())
    for state, value, epochs, error in [(TrialState.COMPLETE, 0.75, 2, None), (TrialState.PRUNED, 0.25, 1, None),
                                        (TrialState.FAIL, None, 1, "TrainingDiverged: in epoch 1"),
                                        (None, 0.3, 1, None)]:
        trial = study.ask()
        trial.suggest_int("num_ops", 1, 3)
        _finish(study, trial, state, value=value, epochs=epochs, error=error)
    return study


def test_states_requeue_rows_and_csv(tmp_path, no_ray):
    study = _study(tmp_path)
    assert state_counts(study) == {"complete": 2, "stopped": 1, "failed": 1}
    running = study.get_trials()[4]
    assert trial_state(running) == "running"

    assert record.requeue_interrupted(study) == 1  # the kill's victim: marked, its point enqueued again
    assert record.requeue_interrupted(study) == 0
    trials = study.get_trials()
    assert [trial_state(t) for t in trials] == ["complete", "complete", "stopped", "failed", "interrupted",
                                                "waiting"]
    assert trials[5].params == {} and trials[5].system_attrs["fixed_params"] == running.params
    assert state_counts(study) == {"complete": 2, "stopped": 1, "failed": 1}  # interrupted never counts
    assert best_trial(complete_trials(study), "max").number == 1
    assert best_trial(complete_trials(study), "min").number == 0

    rows = record.trial_rows(study, ["val_acc"])
    assert [(r["number"], r["state"], r["policy"], r["val_acc"], r["epochs"]) for r in rows] == [
        (0, "complete", "baseline", 0.5, 2), (1, "complete", "searched", 0.75, 2), (2, "stopped", "searched", 0.25, 1),
        (3, "failed", "searched", None, 1), (4, "interrupted", "searched", 0.3, 1)]  # no row for the waiting one
    assert rows[3]["error"] == "TrainingDiverged: in epoch 1" and "param_num_ops" not in rows[0]
    assert "pareto" not in rows[0]

    path = record.write_csv(rows, tmp_path / "trials.csv")
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["number", "state", "policy", "val_acc", "epochs", "wall_time_s", "node", "error",
                        "param_num_ops"]
    assert lines[1] == ["0", "complete", "baseline", "0.5", "2", "1.5", "", "", ""]  # missing cells are empty
    assert lines[4] == ["3", "failed", "searched", "", "1", "1.5", "", "TrainingDiverged: in epoch 1",
                        str(trials[3].params["num_ops"])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db", "trials.csv"]  # no temporary file left


def test_outputs_export_the_best_policy_with_provenance(tmp_path, no_ray):
    study = _study(tmp_path)
    record.requeue_interrupted(study)
    out = record.write_outputs(study, tmp_path, SETTINGS, ["val_acc"], ["max"])
    assert out["best_trial"] == 1 and out["best_scores"] == {"val_acc": 0.75} and out["pareto"] == []
    assert out["counts"] == {"complete": 2, "stopped": 1, "failed": 1} and out["finished"] == 4
    assert [r["state"] for r in out["rows"]] == ["complete", "complete", "stopped", "failed", "interrupted"]
    assert out["policy_path"] == tmp_path / "policy.json"

    policy = load_policy(str(out["policy_path"]))  # validates
    assert policy.name == "search-cifar10-trial1" and policy.soft_targets == load_policy("softaug").soft_targets
    prov = policy.provenance
    assert {k: prov[k] for k in ("dataset", "space", "proxy", "objectives", "scores", "trial", "fixed_policy",
                                 "seed", "trials_finished", "budget", "search_dir")} == {
        "dataset": "cifar10", "space": "randaugment+soft", "proxy": {"epochs": 2}, "objectives": ["val_acc"],
        "scores": {"val_acc": 0.75}, "trial": 1, "fixed_policy": None, "seed": 7, "trials_finished": 4,
        "budget": 6, "search_dir": str(tmp_path)}
    assert set(prov["versions"]) == {"autosoft", "torch", "ray", "optuna", "python"}
    assert (tmp_path / "search_history.png").stat().st_size > 0 and not (tmp_path / "pareto").exists()
    with open(tmp_path / "trials.csv") as f:
        assert [r["state"] for r in csv.DictReader(f)] == [r["state"] for r in out["rows"]]


def test_a_baseline_without_a_trial_is_exported_from_its_candidate(tmp_path, no_ray):
    """A baseline added on resume after the budget was spent can win confirmation with no trial."""
    from autosoft.search.confirm import Candidate
    policy = load_policy("randaugment").to_dict()
    path = record.export_policy(None, tmp_path / "policy.json", settings=SETTINGS, metrics=["val_acc"], finished=6,
                                out=tmp_path, known=Candidate("randaugment", policy, "baseline", None))
    exported = load_policy(str(path))
    assert exported.name == "randaugment"
    assert {k: v for k, v in exported.to_dict().items() if k != "provenance"} == policy
    assert {k: exported.provenance[k] for k in ("trial", "fixed_policy", "scores")} == {
        "trial": None, "fixed_policy": "randaugment", "scores": {}}
    assert policy["name"] == "randaugment" and "provenance" not in policy  # the candidate's dict is not changed


def test_an_export_that_would_change_only_its_time_leaves_the_file(tmp_path, no_ray):
    """A rerun over a finished search exports the same policy again: the file stays byte for byte
    (its "created" time too); anything else that changed is written."""
    from autosoft.search.confirm import Candidate
    known = Candidate("randaugment", load_policy("randaugment").to_dict(), "baseline", None)
    export = dict(settings=SETTINGS, metrics=["val_acc"], out=tmp_path, known=known)
    path = record.export_policy(None, tmp_path / "policy.json", finished=6, **export)
    text = path.read_text()
    created = json.loads(text)["provenance"]["created"]
    path.write_text(text.replace(created, "2020-01-01T00:00:00+00:00"))  # as if exported long ago
    before = path.read_text()
    record.export_policy(None, path, finished=6, **export)
    assert path.read_text() == before
    record.export_policy(None, path, finished=7, **export)
    again = json.loads(path.read_text())["provenance"]
    assert again["trials_finished"] == 7 and again["created"] != "2020-01-01T00:00:00+00:00"


def test_two_objectives_export_the_front(tmp_path, no_ray):
    storage = record.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = record.open_study(storage, "two", ["max", "min"], [])
    for acc, ece in [(0.5, 0.1), (0.6, 0.2), (0.4, 0.3)]:  # the third is dominated by the first
        trial = study.ask()
        trial.suggest_float("power", 0.5, 4)
        trial.set_user_attr("policy", SOFTAUG)
        trial.set_user_attr("metrics", {"val_acc": acc, "val_ece": ece})
        study.tell(trial, [acc, ece])
    out = record.write_outputs(study, tmp_path, SETTINGS, ["val_acc", "val_ece"], ["max", "min"])
    assert out["pareto"] == [0, 1] and out["best_trial"] == 1  # the best first objective on the front
    assert [r["pareto"] for r in out["rows"]] == [True, True, False]
    assert sorted(p.name for p in (tmp_path / "pareto").iterdir()) == ["trial-0.json", "trial-1.json"]
    scores = json.loads((tmp_path / "pareto" / "trial-0.json").read_text())["provenance"]["scores"]
    assert scores == {"val_acc": 0.5, "val_ece": 0.1} and (tmp_path / "pareto_front.png").exists()


def test_empty_study_writes_rows_but_no_policy(tmp_path, no_ray):
    study = record.open_study(record.open_storage(f"sqlite:///{tmp_path / 'e.db'}"), "e", ["max"], [])
    out = record.write_outputs(study, tmp_path, SETTINGS, ["val_acc"], ["max"])
    assert out["policy_path"] is None and out["best_trial"] is None and out["rows"] == [] and out["finished"] == 0
    assert not (tmp_path / "policy.json").exists() and (tmp_path / "trials.csv").read_bytes() == b"\r\n"


def test_bad_storage_is_one_line():
    with pytest.raises(AutosoftError, match="storage 'nonsense://x': cannot open it"):
        record.open_storage("nonsense://x")


def test_importing_the_package_imports_neither_ray_nor_optuna():
    code = ("import sys, autosoft.cli, autosoft.search, autosoft.search.record, autosoft.search.ray_cluster, "
            "autosoft.search.tune_glue, autosoft.search.live_view, autosoft.search.optuna_workarounds; "
            "autosoft.cli.build_parser(); print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna'}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
