"""A real search: Ray Tune + OptunaSearch + ASHA, two trials at a time, on a tiny proxy task.

Ray starts once for the module (2 CPUs); every search joins it. Trials train a
width-8 proxy net for 2 epochs on 400 CIFAR-10 images, scored on 200 held out.
"""

import csv
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("optuna")

from autosoft.cli import main as cli_main  # noqa: E402
from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.policy import Policy, load_policy  # noqa: E402
from autosoft.search import init_ray, run_search  # noqa: E402
from autosoft.search.run import StageTimes  # noqa: E402

PROXY = {"preset": "cpu", "model": "proxy", "model_kwargs": {"width": 8}, "epochs": 2, "batch_size": 100,
         "train_size": 400, "val_size": 200, "lr": 0.1, "warmup_epochs": 0.5, "weak_aug_epochs": 0}


@pytest.fixture(scope="module")
def cluster():
    started = init_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def _search(data_root, out, **kw):
    # The trial machinery alone (confirmation off); the confirmation stage has its own tests below.
    args = dict(dataset="cifar10", budget=4, space="autoaugment+soft", out_dir=out, proxy=PROXY, confirm=0,
                early_stopping="asha",
                data_dir=str(data_root), cpus_per_trial=1, max_concurrent=2, live=False)
    return run_search(**{**args, **kw})


def _rows(out):
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_search_end_to_end_then_retrain(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    result = _search(small_cifar10, out, budget=5, enqueue_baselines=["baseline", "trivialaugment", "softaug"])
    assert result.complete and result.finished == 5

    rows = _rows(out)
    assert len(rows) == 5 and [int(r["number"]) for r in rows] == list(range(5))
    assert all(r["state"] in ("complete", "stopped") and int(r["epochs"]) >= 1 for r in rows)
    # the known policies ran first, as fixed policies; then searched points
    assert [r["policy"] for r in rows] == ["baseline", "trivialaugment", "softaug", "searched", "searched"]
    assert rows[3]["param_sp0_op0"] and rows[3]["param_soft_mode"] in ("target", "weight", "both")
    # the default objective, with the clean, robust and calibration scores beside it
    assert {"val_robust_acc", "val_acc", "val_occlusion_acc", "val_shift_acc", "val_ece"} <= set(rows[0])
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["val_robust_acc"]))
    assert result.best_trial == int(best["number"])

    policy = load_policy(str(out / "policy.json"))  # validates
    prov = policy.provenance
    assert prov["dataset"] == "cifar10" and prov["space"] == "autoaugment+soft" and prov["seed"] == 0
    assert prov["trial"] == result.best_trial and prov["scores"]["val_robust_acc"] == pytest.approx(float(best["val_robust_acc"]))
    assert prov["proxy"]["epochs"] == 2 and prov["proxy"]["eval_test"] is False
    assert set(prov["versions"]) >= {"autosoft", "torch", "ray", "optuna"}
    assert (out / "search_history.png").stat().st_size > 0 and (out / "study.db").exists()

    # a trial is a plain training run: its stored score is what train() gives for the policy and proxy config
    from autosoft.train import TrainConfig, train
    again = train(TrainConfig.from_dict(prov["proxy"]), policy)
    assert again["val_robust_acc"] == float(best["val_robust_acc"])

    # the exported file retrains through the user's command
    code = cli_main(["train", "--policy", str(out / "policy.json"), "--dataset", "cifar10", "--epochs", "1",
                     "--train-size", "200", "--val-size", "100", "--width", "8", "--batch-size", "100",
                     "--data-dir", str(small_cifar10), "--out", str(tmp_path / "retrain"), "--quiet"])
    assert code == 0 and (tmp_path / "retrain" / "final.json").exists()


def test_the_study_reads_back_through_optuna_as_the_dashboard_shows_it(cluster, small_cifar10, tmp_path):
    """optuna-dashboard shows what Optuna's public API reads: state, policy, metrics, the node,
    the train loss per epoch, and the objective (val_robust_acc by default) per validated epoch as
    intermediate values (step = epoch)."""
    import optuna
    # asha validates every epoch; off may validate after the last epoch only
    for early_stopping, budget in (("asha", 2), ("off", 1)):
        out = tmp_path / early_stopping
        _search(small_cifar10, out, budget=budget, space="randaugment", enqueue_baselines=["baseline"],
                early_stopping=early_stopping)
        name = json.loads((out / "search.json").read_text())["study_name"]
        trials = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}").get_trials()
        assert len(trials) == budget and trials[0].user_attrs["fixed_policy"] == "baseline"
        for t in trials:
            attrs = t.user_attrs
            assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            policy = Policy.from_dict(attrs["policy"])  # the machine-readable policy, and as a person reads it
            assert attrs["policy_text"] == repr(policy) and "base: (PadCrop, p=1, m=0.5)" in attrs["policy_text"]
            assert policy.kind == ("none" if t.number == 0 else "randaugment")
            epochs = attrs["epochs"]
            assert epochs == (2 if t.state == optuna.trial.TrialState.COMPLETE else 1)
            steps = t.intermediate_values
            assert max(steps) == epochs and set(steps) <= {1, 2}
            assert steps[epochs] == pytest.approx(attrs["metrics"]["val_robust_acc"])
            if early_stopping == "asha":
                assert sorted(steps) == list(range(1, epochs + 1))
            if t.state == optuna.trial.TrialState.COMPLETE:
                assert t.value == pytest.approx(attrs["metrics"]["val_robust_acc"])
            losses = attrs["train_loss"]
            assert len(losses) == epochs and losses[-1] == pytest.approx(attrs["metrics"]["train_loss"])
            assert attrs["node"] == ray.get_runtime_context().get_node_id() and attrs["node_ip"]


def test_resume_extends_without_rerunning(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    first = _search(small_cifar10, out, budget=2, space="randaugment", enqueue_baselines=False)
    before = _rows(out)
    assert first.complete and len(before) == 2

    with pytest.raises(AutosoftError, match="already exists; pass --resume"):
        _search(small_cifar10, out, budget=4, space="randaugment", enqueue_baselines=False)
    with pytest.raises(AutosoftError, match="--resume: space differs"):
        _search(small_cifar10, out, budget=4, space="autoaugment", enqueue_baselines=False, resume=True)

    second = _search(small_cifar10, out, budget=4, space="randaugment", enqueue_baselines=False, resume=True)
    after = _rows(out)
    assert second.complete and len(after) == 4
    assert after[:2] == before  # finished trials untouched, not run again
    assert sorted(p.name for p in (out / "ray" / "run-2").glob("trial-*")) == ["trial-2", "trial-3"]
    assert after[2]["param_num_ops"] != "" and (after[2]["param_magnitude"], after[3]["param_magnitude"]) != \
        (before[0]["param_magnitude"], before[1]["param_magnitude"])  # a resumed sampler draws new points


def test_kill_9_then_resume_loses_and_reruns_nothing(cluster, small_cifar10, tmp_path):
    """kill -9 the search process mid-way; the same search with resume finishes the budget."""
    out = tmp_path / "search"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from autosoft.search import run_search
        run_search(dataset="cifar10", budget=5, space="randaugment+soft", out_dir={str(out)!r},
                   proxy={PROXY!r}, data_dir={str(small_cifar10)!r}, cpus_per_trial=1, max_concurrent=2,
                   ray_address={cluster!r}, enqueue_baselines=["baseline", "softaug"], confirm=0,
                   early_stopping="asha", live=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "study.db"
    deadline = time.time() + 120
    finished = []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db) as con:
                finished = con.execute("SELECT number, datetime_complete FROM trials "
                                       "WHERE state IN ('COMPLETE', 'PRUNED') ORDER BY number").fetchall()
        except sqlite3.Error:
            continue
        if finished:
            break
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert finished, "no trial finished before the deadline"

    result = _search(small_cifar10, out, budget=5, space="randaugment+soft",
                     enqueue_baselines=["baseline", "softaug"], resume=True)
    rows = _rows(out)
    counted = [r for r in rows if r["state"] != "interrupted"]
    assert result.complete and len(counted) == 5
    assert any(r["state"] == "interrupted" for r in rows)  # the kill cut a running trial short
    with sqlite3.connect(db) as con:
        done = dict(con.execute("SELECT number, datetime_complete FROM trials"))
    for number, completed_at in finished:  # kept, with the time it first completed: not run again
        assert done[number] == completed_at
    # every cut-short trial ran again: both baselines appear exactly once among the counted trials
    assert sorted(r["policy"] for r in counted if r["policy"] != "searched") == ["baseline", "softaug"]
    # the killed start left its line (marked as not ended); the resumed start added its own
    killed, resumed = [json.loads(line) for line in (out / "wall_times.jsonl").read_text().splitlines()]
    assert killed["running"] is True and "trials" in killed
    assert "running" not in resumed and resumed["trials"] > 0


def test_stage_times_survive_a_kill_and_keep_earlier_starts(tmp_path):
    path = tmp_path / "wall_times.jsonl"
    earlier = '{"started": "2026-01-01T00:00:00", "trials": 12.5}\n'
    path.write_text(earlier)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from pathlib import Path
        from autosoft.search.run import StageTimes
        clock = StageTimes(Path({str(path)!r}), every=0.05)
        with clock.stage("trials"):
            print("in", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"in\n"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept, killed = path.read_text().splitlines(keepends=True)
    assert kept == earlier  # an earlier start's line, as it was
    killed = json.loads(killed)
    assert killed["running"] is True and 1.2 <= killed["trials"] <= 2.5  # at most `every` (and a start) short
    assert killed["host"] == socket.gethostname() and killed["pid"] == proc.pid  # whose start it was

    # A start that ends: each stage's time (also one that raised), no "running", nothing else touched.
    clock = StageTimes(path, every=0.05)
    with clock.stage("trials"):
        time.sleep(0.3)
    with pytest.raises(KeyboardInterrupt), clock.stage("confirmation"):
        time.sleep(0.2)
        raise KeyboardInterrupt
    clock.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1]) == killed
    last = json.loads(lines[2])
    assert set(last) == {"started", "trials", "confirmation", "host", "pid"}
    assert all(last[k] == round(v, 1) for k, v in clock.times.items())
    assert 0.3 <= last["trials"] < 0.6 and 0.2 <= last["confirmation"] < 0.5
    # A start in which no stage ran (a finished search resumed) writes nothing.
    StageTimes(path).close()
    assert len(path.read_text().splitlines()) == 3


def test_failed_trials_are_recorded_and_reported(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    with pytest.raises(AutosoftError, match=r"all 2 trials failed; the first \(trial 0\): TrainingDiverged"):
        _search(small_cifar10, out, budget=2, space="randaugment", enqueue_baselines=False,
                proxy={**PROXY, "lr": 1e30})
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert all("diverged" in r["error"] for r in rows)


def test_two_objectives_report_a_pareto_front(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    result = _search(small_cifar10, out, budget=3, space="soft", objectives="acc,ece", enqueue_baselines=False)
    assert result.objectives == ["val_acc", "val_ece"] and result.pareto
    rows = _rows(out)
    assert {r["number"] for r in rows if r["pareto"] == "True"} == {str(n) for n in result.pareto}
    assert (out / "pareto_front.png").exists()
    assert sorted(p.name for p in (out / "pareto").iterdir()) == sorted(f"trial-{n}.json" for n in result.pareto)
    assert set(load_policy(str(out / "policy.json")).provenance["scores"]) == {"val_acc", "val_ece"}


def test_bad_input_fails_before_any_trial(tmp_path, small_cifar10):
    with pytest.raises(AutosoftError, match="budget: expected an integer >= 1"):
        _search(small_cifar10, tmp_path / "a", budget=0)
    with pytest.raises(AutosoftError, match="unknown search space 'bogus'"):
        _search(small_cifar10, tmp_path / "b", space="bogus")
    with pytest.raises(AutosoftError, match="unknown objective"):
        _search(small_cifar10, tmp_path / "c", objectives="speed")
    with pytest.raises(AutosoftError, match="proxy val_size"):
        _search(small_cifar10, tmp_path / "d", proxy={**PROXY, "val_size": 0})
    (tmp_path / "e").mkdir()
    with pytest.raises(AutosoftError, match="already exists"):
        _search(small_cifar10, tmp_path / "e")
    assert not any((tmp_path / n).exists() for n in "abcd")  # nothing written for a rejected search
    # the command line: one line on stderr, exit status 2
    assert cli_main(["search", "--dataset", "cifar10", "--budget", "0", "--out", str(tmp_path / "f")]) == 2
    assert cli_main(["search", "--dataset", "cifar10", "--budget", "3", "--space", "bogus",
                     "--out", str(tmp_path / "g")]) == 2


# A tiny target: what the confirmation stage retrains (2 epochs of 400 images, width 8).
TARGET = {"model": "proxy", "model_kwargs": {"width": 8}, "epochs": 2, "batch_size": 100, "lr": 0.1,
          "warmup_epochs": 0.5, "train_size": 400, "threads": 1}


def test_pipeline_confirms_exports_the_winner_and_resumes(cluster, small_cifar10, tmp_path, capsys):
    """The default pipeline: proxy derived from the target, trials, confirmation of 3 policies x 1 seed."""
    out = tmp_path / "search"
    kw = dict(budget=3, space="randaugment", enqueue_baselines=["baseline", "trivialaugment"], target=TARGET,
              early_stopping=None,
              proxy={"epochs": 8, "train_size": 700, "val_size": 300, "batch_size": 50, "lr": 0.2, "warmup_epochs": 1},
              confirm=1, confirm_seeds=1, confirm_max_seeds=1)
    result = _search(small_cifar10, out, **kw)
    settings = json.loads((out / "search.json").read_text())
    # derived from the target (model, optimizer), then the two overrides
    assert settings["proxy"]["model_kwargs"] == {"width": 8} and settings["proxy"]["epochs"] == 8
    assert settings["proxy"]["weight_decay"] == 5e-4 and settings["proxy"]["schedule"] == "onecycle"
    assert any(note.startswith("batch 100 -> 16") for note in settings["proxy_rules"])  # the target's 8 steps
    assert settings["proxy_rules"][0] == "derived from the target" and any("overridden" in n for n in settings["proxy_rules"])
    assert settings["proxy"]["val_every"] == 0 and settings["confirmation"]["config"]["val_every"] == 0
    assert settings["confirmation"]["config"]["epochs"] == 2 and settings["confirmation"]["config"]["val_size"] == 300
    assert result.chance is None, result.chance
    assert settings["early_stopping"] == "off" and all(r["state"] == "complete" for r in _rows(out))

    with open(out / "confirm.csv") as f:
        confirmed = list(csv.DictReader(f))
    assert sorted(r["kind"] for r in confirmed) == ["baseline", "baseline", "searched"]
    assert all(r["seeds"] == "1" for r in confirmed)
    winner_row = max(confirmed, key=lambda r: float(r["val_robust_acc_mean"]))
    assert [r["winner"] for r in confirmed].count("True") == 1 and winner_row["winner"] == "True"
    assert (out / "confirm.png").stat().st_size > 0 and (out / "proxy_best.json").exists()
    runs = sorted(p.name for p in (out / "confirm").iterdir())
    assert runs == sorted(f"{r['policy']}-s0" for r in confirmed)
    # each confirmation score is its run's own final robust validation accuracy (the default objective)
    for r in confirmed:
        final = json.loads((out / "confirm" / f"{r['policy']}-s0" / "final.json").read_text())
        assert float(r["val_robust_acc_mean"]) == pytest.approx(final["val_robust_acc"])

    policy = load_policy(str(out / "policy.json"))
    conf = policy.provenance["confirmation"]
    assert conf["winner"]["policy"] == winner_row["policy"]
    assert conf["best_baseline"]["policy"] in ("baseline", "trivialaugment") and conf["seeds"] == 1
    # the best searched policy is exported beside it, also when a baseline won
    best_searched = load_policy(str(out / "best_searched.json"))
    assert best_searched.name == "search-cifar10-trial2" and best_searched.provenance["trial"] == 2
    if winner_row["kind"] == "baseline":
        assert policy.name == winner_row["policy"] and "no searched policy beat the best baseline" in result.verdict
    else:
        assert "beats the best baseline" in result.verdict and policy.name == best_searched.name
    assert result.verdict == conf["verdict"] and len(result.confirmation) == 3
    assert set(result.stage_times_s) == {"trials", "confirmation"}
    times = json.loads((out / "wall_times.jsonl").read_text())
    assert set(times) == {"started", "trials", "confirmation", "host", "pid"} and times["pid"] == os.getpid()

    # Resumed from the command line with more seeds and one more trial: the finished runs are
    # kept, the default baselines this search lacked are added (the first runs as the new trial,
    # the other, with no budget left, only in confirmation), and the command ends with the verdict.
    stamps = {p.name: (p / "final.json").stat().st_mtime_ns for p in (out / "confirm").iterdir()}
    (tmp_path / "target.json").write_text(json.dumps(TARGET))
    (tmp_path / "proxy.json").write_text(json.dumps(kw["proxy"]))
    argv = ["search", "--dataset", "cifar10", "--budget", "4", "--space", "randaugment", "--out", str(out),
            "--resume", "--target-config", str(tmp_path / "target.json"), "--config", str(tmp_path / "proxy.json"),
            "--confirm", "1", "--confirm-seeds", "2", "--confirm-max-seeds", "2", "--cpus-per-trial", "1",
            "--max-concurrent", "2",
            "--data-dir", str(small_cifar10)]
    code = cli_main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    for name, stamp in stamps.items():
        assert (out / "confirm" / name / "final.json").stat().st_mtime_ns == stamp
    assert len(list((out / "confirm").iterdir())) == 10  # 5 policies x 2 seeds
    assert [r["policy"] for r in _rows(out)] == ["baseline", "trivialaugment", "searched", "autoaugment-cifar10"]
    with open(out / "confirm.csv") as f:
        proxy_scores = {r["policy"]: r["proxy_score"] for r in csv.DictReader(f)}
    assert set(proxy_scores) == {"trial-2", "baseline", "trivialaugment", "autoaugment-cifar10", "randaugment"}
    assert proxy_scores["autoaugment-cifar10"] != "" and proxy_scores["randaugment"] == ""
    again = load_policy(str(out / "policy.json")).provenance["confirmation"]
    assert again["seeds"] == 2 and again["winner"]["seeds"] == 2
    assert f"verdict: {again['verdict']}" in printed and re.search(r"wall time: trials \d+ s, confirmation", printed)
    # the rank correlation is over the policies with a proxy score: randaugment has none
    assert "proxy vs confirmation rank correlation (Spearman, 4 policies)" in printed

    # The same command over the finished search: it trains nothing, prints the same verdict and
    # changes no file (no export rewritten with a new time, no start added to wall_times.jsonl).
    files = {p: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "study.db"}
    assert cli_main(argv) == 0
    assert f"verdict: {again['verdict']}" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "study.db"} == files

    # A control aimed at the same target (seed 1: other draws, confirmed at seed 1) reuses the
    # baselines' confirmation runs (copied, not trained again) and trains its searched policy's.
    control = tmp_path / "control"
    ctl = _search(small_cifar10, control, **{**kw, "sampler": "random", "seed": 1}, reuse_confirmation=[out])
    for name in ("baseline-s1", "trivialaugment-s1"):
        assert json.loads((control / "confirm" / name / "reused_from.json").read_text())["source"] == \
            str((out / "confirm" / name).resolve())
        assert (control / "confirm" / name / "final.json").read_text() == (out / "confirm" / name / "final.json").read_text()
    assert not (control / "confirm" / "trial-2-s1" / "reused_from.json").exists()
    assert (control / "confirm" / "trial-2-s1" / "final.json").exists() and len(ctl.confirmation) == 3


# A space whose every policy shifts each image by its whole width: nothing is left but the fill,
# so its policy learns nothing (validation accuracy about 0.1), far below the baselines.
ERASE_SPACE = """
DESCRIPTION = "every image shifted out of its frame"

def space(trial):
    m = trial.suggest_categorical("m", [1.0])  # the whole width (0.999 would keep a column)
    return {"version": 1, "name": "erase", "kind": "subpolicies", "ranges": "wide", "base": [],
            "subpolicies": [[["TranslateX", 1.0, m]]]}
"""


def test_the_race_pairs_seeds_on_one_split_stops_the_worse_and_a_resume_adds_seeds(cluster, small_cifar10, tmp_path,
                                                                                     capsys):
    from autosoft.search.proxy import CONFIRM_SPLIT_SEED
    space = tmp_path / "erase.py"
    space.write_text(ERASE_SPACE)
    out = tmp_path / "race"
    # the proxy's training as the target too: well above chance, so a gap to the erased policy is clear
    train = {"epochs": 8, "train_size": 700, "batch_size": 50, "lr": 0.2, "warmup_epochs": 1}
    kw = dict(budget=2, space=str(space), enqueue_baselines=["baseline"], target={**TARGET, **train},
              early_stopping=None, confirm=1, confirm_seeds=3, confirm_max_seeds=3,
              proxy={**train, "val_size": 300})
    result = _search(small_cifar10, out, **kw)
    with open(out / "confirm.csv") as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"trial-1", "baseline"}
    # paired: both policies have seeds 0-2, all on the one confirmation split
    configs = [json.loads(p.read_text()) for p in (out / "confirm").glob("*/config.json")]
    assert len(configs) == 6 and {c["train"]["split_seed"] for c in configs} == {CONFIRM_SPLIT_SEED}
    assert sorted(p.name for p in (out / "confirm").iterdir()) == sorted(f"{n}-s{s}" for n in rows for s in range(3))
    # the erased policy scores about chance (10 classes) on every seed and is stopped by the paired test
    erased = [json.loads((out / "confirm" / f"trial-1-s{s}" / "final.json").read_text())["val_acc"] for s in range(3)]
    assert all(acc < 0.15 for acc in erased), erased
    assert rows["trial-1"]["race"].startswith("stopped after 3 seeds: worse than baseline"), rows
    conf = load_policy(str(out / "policy.json")).provenance["confirmation"]
    assert not conf["searched_won"] and conf["paired_seeds"] == 3 and conf["margin"] < 0 and conf["margin_se"] > 0
    assert conf["metric"] == "val_robust_acc" and conf["max_seeds"] == 3 and conf["separated"]
    assert "paired over 3 seeds (separated" in result.verdict and conf["race"].startswith("separated")

    # Resumed with a higher cap: the race is separated, so no run is added and none rewritten.
    runs = {p: p.read_bytes() for p in (out / "confirm").rglob("*") if p.is_file()}
    _search(small_cifar10, out, resume=True, **{**kw, "confirm_max_seeds": 5})
    assert {p: p.read_bytes() for p in (out / "confirm").rglob("*") if p.is_file()} == runs
    # Resumed with a fourth starting seed, as a user resumes: a fresh process (Ray not up in it:
    # there are no trials left to start it) and no --max-concurrent. The six finished runs are read
    # back, never trained again, and both policies get seed 3 (paired again); the erased one stays stopped.
    stamps = {p.name: (p / "final.json").stat().st_mtime_ns for p in (out / "confirm").iterdir()}
    resumed = {**kw, "confirm_seeds": 4, "confirm_max_seeds": 5, "space": str(space)}
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from autosoft.search import run_search
        run_search(dataset="cifar10", out_dir={str(out)!r}, data_dir={str(small_cifar10)!r}, cpus_per_trial=1,
                   ray_address={cluster!r}, resume=True, live=False, **{resumed!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = _search(small_cifar10, out, resume=True, **resumed)  # reads the race back: nothing left to train
    for name, stamp in stamps.items():
        assert (out / "confirm" / name / "final.json").stat().st_mtime_ns == stamp, name
    assert sorted(p.name for p in (out / "confirm").iterdir()) == sorted(f"{n}-s{s}" for n in rows for s in range(4))
    assert all(c["seeds"] == 4 for c in again.confirmation)
    with open(out / "confirm.csv") as f:
        assert next(r for r in csv.DictReader(f) if r["policy"] == "trial-1")["race"].startswith("stopped after 4")


def test_random_sampler_is_the_control(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    result = _search(small_cifar10, out, budget=2, space="randaugment", enqueue_baselines=False, sampler="random")
    assert result.complete and json.loads((out / "search.json").read_text())["sampler"] == "random"
    with pytest.raises(AutosoftError, match="--resume: sampler differs"):
        _search(small_cifar10, out, budget=3, space="randaugment", enqueue_baselines=False, resume=True)
    with pytest.raises(AutosoftError, match="unknown sampler 'grid'; allowed: tpe, random"):
        _search(small_cifar10, tmp_path / "x", sampler="grid")
    with pytest.raises(AutosoftError, match="unknown early stopping 'median'; allowed: off, asha"):
        _search(small_cifar10, tmp_path / "x", early_stopping="median")
    assert not (tmp_path / "x").exists()


def test_a_known_policy_joined_first_searches_only_its_soft_targets(cluster, small_cifar10, tmp_path):
    """--space autoaugment-cifar10+soft: every trial trains the published ops, the soft-target
    curve drawn per trial; the exported policy keeps the ops, and a resume loads the space again."""
    import optuna
    out = tmp_path / "search"
    aa = load_policy("autoaugment-cifar10")
    _search(small_cifar10, out, budget=2, space="autoaugment-cifar10+soft", enqueue_baselines=False)
    _search(small_cifar10, out, budget=3, space="autoaugment-cifar10+soft", enqueue_baselines=False, resume=True)
    name = json.loads((out / "search.json").read_text())["study_name"]
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}").get_trials()
    policies = [Policy.from_dict(t.user_attrs["policy"]) for t in trials]
    assert len(policies) == 3 and all(p.subpolicies == aa.subpolicies for p in policies)
    assert len({p.soft_targets for p in policies}) == 3
    assert all(not k.startswith("sp") for t in trials for k in t.params)
    exported = load_policy(str(out / "policy.json"))
    assert exported.subpolicies == aa.subpolicies and exported.provenance["space"] == "autoaugment-cifar10+soft"


def test_a_proxy_at_chance_is_named_and_not_confirmed(cluster, small_cifar10, tmp_path):
    out = tmp_path / "search"
    result = _search(small_cifar10, out, budget=2, space="randaugment", enqueue_baselines=False, target=TARGET,
                     proxy={**PROXY, "lr": 1e-7, "epochs": 1}, confirm=1, confirm_seeds=1)
    # chance is the majority class's share of these 200 validation images (23 of them), above 1/10
    assert result.chance and "within noise of chance (0.115" in result.chance and "200 validation images" in result.chance
    assert result.verdict is None and not (out / "confirm").exists()  # nothing to confirm: no ranking
    chance = load_policy(str(out / "policy.json")).provenance["chance"]
    assert chance["chance"] == pytest.approx(0.115) and chance["val_images"] == 200


# ---- a search that cannot start leaves nothing behind ------------------------------------
def _cli_search_args(data_root, tmp_path, out):
    config = tmp_path / "proxy.json"
    config.write_text(json.dumps({**PROXY, "epochs": 1}))
    return ["search", "--dataset", "cifar10", "--budget", "1", "--space", "randaugment", "--no-baselines",
            "--confirm", "0", "--config", str(config), "--cpus-per-trial", "1", "--max-concurrent", "1",
            "--data-dir", str(data_root), "--out", str(out)]


@pytest.mark.parametrize("case", ["space-raises", "space-returns-none", "storage", "ray-address", "gpu", "model",
                                  "val-too-big"])
def test_cli_search_that_cannot_start_writes_nothing(cluster, small_cifar10, tmp_path, capsys, case):
    import torch
    if case == "gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    space = tmp_path / "my_space.py"
    space.write_text("def space(trial):\n    return 1 / 0\n" if case == "space-raises" else
                     "def space(trial):\n    trial.suggest_int('n', 1, 2)\n")
    bad, message = {
        "space-raises": (["--space", str(space)], f"{space}: space(trial) raised ZeroDivisionError: division by zero"),
        "space-returns-none": (["--space", str(space)], f"{space}: space(trial) returned NoneType; expected a dict"),
        "storage": (["--storage", "notadb://nowhere"], "storage 'notadb://nowhere': cannot open it"),
        "ray-address": (["--ray-address", "127.0.0.1:1"], "cannot join the Ray cluster at '127.0.0.1:1': nothing answers"),
        "gpu": (["--gpus-per-trial", "0.5"], "a trial needs 1.0 CPU and 0.5 GPU but the Ray cluster has 2.0 CPU and 0 GPU"),
        "model": (["--model", "vgg99"], "unknown model 'vgg99'"),
        "val-too-big": (["--val-size", "5000"], "val_size must be between 1 and 999"),
    }[case]
    out = tmp_path / "search"
    good = _cli_search_args(small_cifar10, tmp_path, out)
    start = time.time()
    assert cli_main([*good, *bad]) == 2  # a flag given twice: the later one wins
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert time.time() - start < 15  # fails in seconds (Ray used to retry an absent cluster for minutes)
    assert not out.exists()
    if case == "space-raises":  # the corrected command, same --out
        assert cli_main(good) == 0
        assert len(_rows(out)) == 1 and json.loads((out / "search.json").read_text())["space"] == "randaugment"


def test_ray_address_that_answers_nothing_fails_in_seconds(cluster):
    from autosoft.search.ray_cluster import check_ray_address
    check_ray_address(cluster)  # the running cluster answers
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        start = time.time()
        with pytest.raises(AutosoftError, match="nothing answers at 127.0.0.1:1 .*ray start --head"):
            check_ray_address(address)
        assert time.time() - start < 5
    with pytest.raises(AutosoftError, match="expected host:port"):
        check_ray_address("ray://nowhere")


def test_a_search_that_finished_no_trial_is_taken_over(cluster, small_cifar10, tmp_path, capsys, monkeypatch):
    """A start that failed after writing its folder (here: Ray would not start) holds no result, so
    the next command, with other settings, takes the folder over; a finished trial keeps it."""
    from autosoft.search import ray_cluster
    out = tmp_path / "search"
    good = _cli_search_args(small_cifar10, tmp_path, out)

    def no_ray(address=None, **kw):
        raise AutosoftError("Ray would not start")
    monkeypatch.setattr(ray_cluster, "init_ray", no_ray)
    assert cli_main([*good, "--space", "autoaugment"]) == 2 and "Ray would not start" in capsys.readouterr().err
    assert (out / "search.json").exists() and (out / "study.db").exists()
    monkeypatch.undo()

    assert cli_main(good) == 0  # other settings, no --resume: taken over
    settings = json.loads((out / "search.json").read_text())
    assert settings["space"] == "randaugment" and [r["state"] for r in _rows(out)] == ["complete"]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert cli_main([*good, "--space", "autoaugment"]) == 2  # a finished trial: the folder is kept
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert cli_main([*good, "--space", "autoaugment", "--resume"]) == 2
    assert "--resume: space differs" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# A target whose rungs the sizing rules keep apart on 1,000 images: 10 epochs of 800 at batch 16
# (500 steps); 1/2 of its cost is 400 images at batch 16 (250 steps, above the 150-step floor).
RUNG_TARGET = {**TARGET, "epochs": 10, "batch_size": 16, "lr": 0.05, "train_size": 800}


def test_rungs_promote_the_best_half_and_confirm_from_the_last_rung(cluster, small_cifar10, tmp_path, capsys):
    out = tmp_path / "halving"
    kw = dict(budget=5, space="randaugment+soft", enqueue_baselines=["baseline"], target=RUNG_TARGET,
              early_stopping=None, proxy="auto", rungs="1/2,1", reduction_factor=2, confirm=1, confirm_seeds=1,
              confirm_max_seeds=1)
    result = _search(small_cifar10, out, **kw)
    settings = json.loads((out / "search.json").read_text())
    assert settings["proxy"]["train_size"] == 400 and settings["rungs"]["costs"] == [1.0]
    rung_config = settings["rungs"]["configs"][0]
    # the rung: the target's images and epochs, on the trials' validation split (same size, same seed)
    assert rung_config["train_size"] == 800 and rung_config["epochs"] == 10
    assert rung_config["val_size"] == settings["proxy"]["val_size"] and rung_config["split_seed"] == 0

    trials = {f"trial-{r['number']}" if r["policy"] == "searched" else r["policy"]: float(r["val_robust_acc"])
              for r in _rows(out)}
    searched = sorted((n for n in trials if n.startswith("trial-")), key=lambda n: -trials[n])
    assert len(searched) == 4
    # the best half of the 4 searched trials and the baseline, trained once each at the rung
    runs = sorted(p.name for p in (out / "rungs" / "cost-1").iterdir())
    assert runs == sorted([f"{n}-s0" for n in searched[:2]] + ["baseline-s0"])
    with open(out / "rungs.csv") as f:
        rows = list(csv.DictReader(f))
    rung = {r["policy"]: float(r["val_robust_acc"]) for r in rows if r["cost"] == "1.0"}
    assert {r["policy"]: float(r["val_robust_acc"]) for r in rows if r["cost"] == "0.5"} == \
        pytest.approx({n: trials[n] for n in rung})   # the trials' own scores beside the rung's
    for name, score in rung.items():
        final = json.loads((out / "rungs" / "cost-1" / f"{name}-s0" / "final.json").read_text())
        assert final["val_robust_acc"] == pytest.approx(score)
    # the confirmation takes the rung's best searched policy, its rung score as its proxy score
    with open(out / "confirm.csv") as f:
        confirmed = {r["policy"]: r for r in csv.DictReader(f)}
    best = max(searched[:2], key=lambda n: rung[n])
    assert set(confirmed) == {best, "baseline"}
    assert float(confirmed[best]["proxy_score"]) == pytest.approx(rung[best])
    assert [c["cost"] for c in result.rung_correlations] == [0.5, 1.0]
    assert all(c["policies"] == 2 and c["spearman"] is None for c in result.rung_correlations)  # 2: no rank
    assert set(result.stage_times_s) == {"trials", "rungs", "confirmation"}
    conf = load_policy(str(out / "policy.json")).provenance["confirmation"]
    assert conf["rung_correlations"] == result.rung_correlations

    # Rerun over the finished search: no rung run is trained again.
    stamps = {p.name: (p / "final.json").stat().st_mtime_ns for p in (out / "rungs" / "cost-1").iterdir()}
    again = _search(small_cifar10, out, resume=True, **kw)
    assert again.confirmation == result.confirmation
    assert {p.name: (p / "final.json").stat().st_mtime_ns for p in (out / "rungs" / "cost-1").iterdir()} == stamps


@pytest.mark.parametrize("bad, message", [
    (["--rungs", "1/4"], "--rungs '1/4': expected two or more increasing shares"),
    (["--rungs", "1/4,1/16"], "--rungs '1/4,1/16': expected two or more increasing shares"),
    (["--rungs", "1/16,half"], "--rungs '1/16,half': 'half' is not a share of one target run"),
    (["--rungs", "1/16,2"], "--rungs '1/16,2': '2' is not a share of one target run"),
    (["--rungs", "1/16,1/4", "--reduction-factor", "1"], "--reduction-factor: expected an integer >= 2"),
    (["--reduction-factor", "3"], "--reduction-factor: sets how many trials successive halving promotes"),
    (["--rungs", "1/16,1/4", "--proxy", "cpu"], "--rungs: size the proxy derived from the target; the 'cpu' preset"),
    (["--rungs", "1/16,1/4", "--confirm", "0"], "--rungs: the last rung's best go to the confirmation stage"),
    (["--rungs", "1/16,1/4", "--proxy-cost", "1/8"], "--proxy-cost 1/8 and --rungs both set the trials' cost"),
    (["--rungs", "1/16,1/4", "--epochs", "3"], "--rungs: each rung's epochs follow from its share"),
])
def test_cli_bad_rungs_fail_in_one_line_and_write_nothing(small_cifar10, tmp_path, capsys, bad, message):
    target = tmp_path / "target.json"
    target.write_text(json.dumps(RUNG_TARGET))
    out = tmp_path / "search"
    argv = ["search", "--dataset", "cifar10", "--budget", "2", "--target-config", str(target),
            "--data-dir", str(small_cifar10), "--out", str(out), *bad]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
