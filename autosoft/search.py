"""Joint search of the augmentation policy and its soft-target curve: `autosoft search`.

Ray Tune runs the trials (each one `autosoft.train.train` on a small proxy task),
Optuna proposes them (TPE, or NSGA-II for two objectives) and ASHA stops weak
ones early on the per-epoch validation score. Everything Ray-specific lives in
this module: its API has changed under users several times.

The Optuna study is the record of the search and the source of truth for
`--resume`: every trial's parameters, policy, metrics and state are committed to
its storage (sqlite in the output folder by default) as soon as the trial ends.
Ray Tune's own folders (``ray/run-N``, one per start) are logs, never read back.
A resumed search re-runs only the trials that were cut short (their policies are
enqueued again), never a finished one.

Output folder:
    search.json         the settings; --resume checks they match
    study.db            the Optuna study (unless --storage names another database)
    policy.json         the best policy, with provenance
    trials.csv          every trial: state, parameters, scores, epochs run, wall time
    search_history.png  score per trial and best so far
    pareto_front.png, pareto/   with two objectives: the front and its policies
    ray/run-N/          Ray Tune's logs of each start
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.util
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from autosoft.errors import AutosoftError

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
SPACE_NAMES = ("autoaugment", "randaugment", "soft", "autoaugment+soft", "randaugment+soft")
# Known policies run first, so the search can only match or beat them on the proxy.
# Spaces without soft targets get the hard-label ones only, to keep that comparison clean.
BASELINES_HARD = ("baseline", "trivialaugment")
BASELINES_SOFT = ("baseline", "trivialaugment", "softaug")
# --objective names -> (metric the trainer reports, direction)
OBJECTIVES = {"acc": ("val_acc", "max"), "ece": ("val_ece", "min"), "nll": ("val_nll", "min")}
# Parts after the first in "a+b" contribute only these keys (the soft part joins a space).
JOIN_KEYS = ("base", "soft_targets")
# Settings that must match for --resume (budget, time limit and resources may change).
RESUME_KEYS = ("dataset", "space", "objectives", "proxy", "seed", "baselines")


# ---- search spaces ------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSpace:
    """A define-by-run space: call it with an Optuna trial, get a policy dict.

    `parts` are the space functions of "a+b+...": the first gives the policy, the
    others replace its "base" and "soft_targets" (see `JOIN_KEYS`).
    """

    name: str
    parts: tuple[Callable[[Any], dict], ...]
    description: str

    def __call__(self, trial) -> dict:
        policy = dict(self.parts[0](trial))
        for part in self.parts[1:]:
            joined = part(trial)
            policy.update({k: joined[k] for k in JOIN_KEYS if k in joined})
        policy["name"] = self.name if len(self.parts) > 1 else policy.get("name", self.name)
        return _tidy(policy)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}: {self.description})"


def _tidy(value):
    """Round floats to 6 decimals: Optuna's 0.1 grid gives 0.30000000000000004, which no one should read."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def _load_module(path: Path, label: str):
    spec = importlib.util.spec_from_file_location(f"autosoft_space_{path.stem}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file: say which one and why, in one line
        raise AutosoftError(f"space {label!r}: cannot load {path}: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, "space", None)):
        raise AutosoftError(f"space {label!r}: {path} defines no function space(trial) -> dict")
    return module


def _load_part(name: str):
    if name in SPACE_NAMES and "+" not in name:
        return _load_module(SPACES_DIR / f"{name}.py", name)
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return _load_module(path, name)
    raise AutosoftError(f"unknown search space {name!r}; allowed: {', '.join(SPACE_NAMES)}, "
                        "a space file (.py), or several joined with '+'")


def load_space(name_or_path: str | SearchSpace) -> SearchSpace:
    """A built-in space by name ("autoaugment+soft"), a space file, or "file.py+soft"."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    name = str(name_or_path)
    pieces = [name] if Path(name).is_file() else name.split("+")
    modules = [_load_part(p) for p in pieces]
    first = modules[0]
    description = getattr(first, "DESCRIPTION", None) or (first.__doc__ or name).strip().splitlines()[0]
    if len(pieces) > 1:
        description += "; joined with " + " and ".join(map(repr, pieces[1:]))
    return SearchSpace(name, tuple(m.space for m in modules), description)


def describe_spaces() -> str:
    """The built-in spaces, one line each (`autosoft show spaces`)."""
    width = max(map(len, SPACE_NAMES))
    lines = []
    for name in SPACE_NAMES:
        space = load_space(name)
        hard = all(p.soft_targets is None for p in sample_policies(space, 2))
        lines.append(f"{name:<{width}}  {space.description}{'; hard labels' if hard else ''}")
    lines.append(f"(plain names keep hard labels; '+soft' joins the soft-target part. "
                 f"Copy a file from {SPACES_DIR} and pass its path to --space to edit one.)")
    return "\n".join(lines)


def sample_policies(space: str | SearchSpace, n: int, *, seed: int = 0) -> list:
    """`n` policies drawn uniformly at random from a space (no training): the random control."""
    import optuna
    from autosoft.policy import Policy

    space = load_space(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    policies = []
    for _ in range(n):
        trial = study.ask()
        data = space(trial)
        try:
            policies.append(Policy.from_dict(data, source=f"space {space.name!r}"))
        except AutosoftError as e:
            raise AutosoftError(f"space {space.name!r} produced an invalid policy at {trial.params}: {e}") from None
        study.tell(trial, 0.0)
    return policies


# ---- settings -----------------------------------------------------------------------
def parse_objectives(objectives: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """("acc", "ece") or "acc,ece" -> (["val_acc", "val_ece"], ["max", "min"])."""
    names = objectives.split(",") if isinstance(objectives, str) else list(objectives)
    metrics, modes = [], []
    for raw in names:
        key = raw.strip().removeprefix("val_")
        if key not in OBJECTIVES:
            raise AutosoftError(f"unknown objective {raw.strip()!r}; allowed: {', '.join(OBJECTIVES)} "
                                "(one, or two joined by a comma)")
        metrics.append(OBJECTIVES[key][0])
        modes.append(OBJECTIVES[key][1])
    if not 1 <= len(metrics) <= 2 or len(set(metrics)) != len(metrics):
        raise AutosoftError(f"objectives: expected one or two different names, got {','.join(names)!r}")
    return metrics, modes


def proxy_config(dataset: str, proxy: str | dict = "auto", *, seed: int = 0, data_dir=None,
                 threads: int | None = None) -> dict:
    """The proxy task's TrainConfig as a dict: a preset ("cpu" / "gpu", "auto" = by device)
    with overrides; `proxy` may be a dict of overrides with an optional "preset" key."""
    import torch
    from autosoft.train import PROXY_PRESETS, TrainConfig

    overrides = dict(proxy) if isinstance(proxy, dict) else {"preset": proxy}
    preset = overrides.pop("preset", "auto")
    if preset == "auto":
        preset = "gpu" if torch.cuda.is_available() else "cpu"
    if preset not in PROXY_PRESETS:
        raise AutosoftError(f"unknown proxy preset {preset!r}; allowed: auto, {', '.join(PROXY_PRESETS)}")
    config = {**PROXY_PRESETS[preset], **overrides, "dataset": dataset, "seed": seed, "data_dir": data_dir,
              "eval_test": False}
    if threads is not None:
        config["threads"] = threads
    train_config = TrainConfig.from_dict(config)
    train_config.validate()
    if not train_config.val_size:
        raise AutosoftError("proxy val_size: expected > 0; the search scores on a validation split carved "
                            "from train, never on the test split")
    return train_config.to_dict()


def parse_time_limit(text: str | float | None) -> float | None:
    """"90", "90s", "30m", "1.5h" -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return text
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise AutosoftError(f"time limit: expected a positive duration like 600, 30m or 1.5h, got {text!r}")
    return seconds


# ---- results ------------------------------------------------------------------------
@dataclass
class SearchResult:
    out_dir: Path
    policy_path: Path | None      # None when no trial finished all its epochs yet
    best_trial: int | None
    best_scores: dict[str, float]
    objectives: list[str]
    trials: list[dict]            # the rows of trials.csv
    finished: int                 # trials that count towards the budget
    budget: int
    complete: bool                # the budget was reached
    pareto: list[int] = field(default_factory=list)   # trial numbers on the front (two objectives)
    wall_time_s: float = 0.0

    def __repr__(self) -> str:
        states = {}
        for row in self.trials:
            states[row["state"]] = states.get(row["state"], 0) + 1
        best = ", ".join(f"{k}={v:.4f}" for k, v in self.best_scores.items()) or "none yet"
        return (f"SearchResult({self.finished}/{self.budget} trials {states}, best trial {self.best_trial}: "
                f"{best}, policy {self.policy_path}, {self.wall_time_s:.0f} s)")


# ---- the trial: runs in a Ray worker ---------------------------------------------------
def _run_trial(config: dict, *, proxy: dict, data) -> None:
    """One trial: train the proxy with the suggested policy, report every epoch to Tune."""
    from ray import tune
    from autosoft.policy import Policy
    from autosoft.train import TrainConfig, train

    def report(epoch: int, metrics: dict) -> None:
        tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))})

    policy = Policy.from_dict(config["policy"], source=f"trial {config['trial_number']}")
    train(TrainConfig.from_dict(proxy), policy, report=report, quiet=True, data=data)


# ---- Optuna inside Ray Tune -----------------------------------------------------------
def _state_counts(study) -> dict:
    from optuna.trial import TrialState
    counts = {"complete": 0, "stopped": 0, "failed": 0}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("interrupted"):
            continue
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            counts["stopped"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
    return counts


def _make_searcher(space: SearchSpace, *, metrics, modes, sampler, study_name, storage, epochs, stopped):
    """OptunaSearch that keeps the whole record in the study (see the module docstring)."""
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from autosoft.policy import load_policy

    def define_by_run(trial) -> dict:
        # Known policies are enqueued with a "fixed_policy" attribute: they need not be points of the space.
        fixed = trial.user_attrs.get("fixed_policy")
        return {"policy": load_policy(fixed).to_dict() if fixed else space(trial)}

    class StudySearcher(OptunaSearch):
        def __init__(self):
            metric = metrics if len(metrics) > 1 else metrics[0]
            mode = modes if len(modes) > 1 else modes[0]
            super().__init__(define_by_run, metric=metric, mode=mode, sampler=sampler,
                             study_name=study_name, storage=storage)
            self.last_result: dict[str, dict] = {}
            self.counts = _state_counts(self._ot_study)
            self.failed: set[int] = set()
            done = self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            pick = max if modes[0] == "max" else min
            self.best = pick(((t.values[0], t.number) for t in done), key=lambda b: b[0], default=None)

        def suggest(self, trial_id: str):
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr("policy", config["policy"])
            ot_trial.set_user_attr("tune_trial_id", trial_id)
            return {"policy": config["policy"], "trial_number": ot_trial.number,
                    "fixed_policy": ot_trial.user_attrs.get("fixed_policy")}

        def on_trial_result(self, trial_id: str, result: dict):
            self.last_result[trial_id] = result
            super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            if trial_id in self._completed_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            result = result or self.last_result.get(trial_id)
            epochs_run = int(result.get("training_iteration", 0)) if result else 0
            if result:
                ot_trial.set_user_attr("metrics", {k: v for k, v in result.items()
                                                   if k.startswith(("val_", "train_")) and _finite(v)})
                ot_trial.set_user_attr("wall_time_s", result.get("time_total_s"))
            ot_trial.set_user_attr("epochs", epochs_run)
            self._completed_trials.add(trial_id)
            if error:
                return  # told FAIL by record_error, once the callback has the exception
            values = [result.get(m) for m in metrics] if result else [None]
            if epochs_run >= epochs and all(_finite(v) for v in values):
                self._ot_study.tell(ot_trial, values)
                self.counts["complete"] += 1
                if self.best is None or _better(values[0], self.best[0], modes[0]):
                    self.best = (values[0], ot_trial.number)
            elif epochs_run >= epochs:
                self.record_error(trial_id, f"non-finite validation score {values}")
            elif trial_id in stopped:  # ASHA stopped it: a pruned trial, with its scores so far
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
                self.counts["stopped"] += 1
            # else: cut short by Ctrl-C or the time limit; it stays RUNNING and is enqueued again

        def record_error(self, trial_id: str, message: str) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or ot_trial.number in self.failed:
                return
            self.failed.add(ot_trial.number)
            self._completed_trials.add(trial_id)
            ot_trial.set_user_attr("error", message)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self.counts["failed"] += 1

        def save(self, checkpoint_path: str):
            # The study is the searcher's state; Tune's experiment snapshot only notes where it is.
            Path(checkpoint_path).write_text(json.dumps({"optuna_study": study_name}))

        def restore(self, checkpoint_path: str):
            raise AutosoftError("resume a search with `autosoft search --resume` (the Optuna study holds its state)")

    return StudySearcher()


def _make_scheduler(epochs: int, stopped: set):
    """ASHA on val_acc per epoch; remembers which trials it stopped before their last epoch."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class Scheduler(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and trial.config.get("fixed_policy"):
                # Known baselines always run to the end: the search result is compared with
                # their full-schedule score, and strong augmentation looks weak early on.
                return TrialScheduler.CONTINUE
            if action == TrialScheduler.STOP and result.get("training_iteration", 0) < epochs:
                stopped.add(trial.trial_id)
            return action

    # Grace of a third of the schedule: strong augmentation trails weak augmentation in the
    # first epochs, and a shorter grace mostly stops policies that would have caught up.
    return Scheduler(metric="val_acc", mode="max", max_t=epochs, grace_period=max(1, epochs // 3),
                     reduction_factor=3)


def _error_line(trial) -> str:
    """The trial's exception as one line, e.g. 'TrainingDiverged: training diverged in epoch 2 ...'.

    Read from the files Tune has just written into the trial's local folder (its
    `get_error()` reads the storage copy, which may not be synced yet).
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


def _make_live_view(searcher, *, budget: int, metric: str, live: bool):
    from ray.tune import Callback

    tty = sys.stdout.isatty()

    class LiveView(Callback):
        """Trials finished / running / stopped / failed, best so far, time used: one line, rewritten in
        place on a terminal, a new line per change in a log."""

        def __init__(self):
            self.start = time.time()
            self.last = None

        def _show(self, trials, ended=None, note: str = "") -> None:
            if not live:
                return
            c = searcher.counts
            running = sum(t.status == "RUNNING" and t is not ended for t in trials)
            best = f"best {metric} {searcher.best[0]:.4f} (trial {searcher.best[1]})" if searcher.best else "best -"
            line = (f"{c['complete'] + c['stopped'] + c['failed']}/{budget} done ({c['stopped']} stopped early, "
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
            self._show(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._show(trials, trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            message = _error_line(trial)
            searcher.record_error(trial.trial_id, message)
            self._show(trials, trial, f"trial {trial.config.get('trial_number', trial.trial_id)} failed: {message}")

        def on_experiment_end(self, trials, **info):
            if live and tty:
                print(flush=True)

    return LiveView()


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---- study bookkeeping ----------------------------------------------------------------
def _make_sampler(n_objectives: int, budget: int, seed: int):
    import optuna
    if n_objectives > 1:
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, budget // 4)), seed=seed)
    with warnings.catch_warnings():  # multivariate and group are "experimental" in Optuna; TPE is the point
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True: conditional parameters (p_min, the SoftCrop strength) and the fixed baseline
        # trials (no parameters) would otherwise push multivariate TPE back to independent sampling.
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)


def _open_storage(url: str):
    import optuna
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:  # a bad URL or an unreachable server: one line
        raise AutosoftError(f"storage {url!r}: cannot open it ({type(e).__name__}: {str(e).splitlines()[0]}); "
                            "expected a database URL such as sqlite:///path/study.db") from None


def _requeue_interrupted(study) -> int:
    """Trials left RUNNING (a kill, Ctrl-C, the time limit) are marked and their policies enqueued again."""
    from optuna.trial import TrialState
    storage = study._storage  # Optuna's public API cannot set attributes on another process's trial
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fixed = t.user_attrs.get("fixed_policy")
        study.enqueue_trial(t.params, user_attrs={"fixed_policy": fixed} if fixed else None)
        storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        n += 1
    return n


def _finished(study) -> list:
    from optuna.trial import TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and not t.user_attrs.get("interrupted")]


def _trial_rows(study, metrics: list[str], pareto: set[int]) -> list[dict]:
    from optuna.trial import TrialState
    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "stopped", TrialState.FAIL: "failed",
             TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        m = t.user_attrs.get("metrics", {})
        state = "interrupted" if t.user_attrs.get("interrupted") else names.get(t.state, t.state.name.lower())
        row = {"number": t.number, "state": state, "policy": t.user_attrs.get("fixed_policy") or "searched"}
        for metric in metrics:
            row[metric] = m.get(metric)
        row.update({"epochs": t.user_attrs.get("epochs", 0), "wall_time_s": t.user_attrs.get("wall_time_s")})
        if len(metrics) > 1:
            row["pareto"] = t.number in pareto
        row["error"] = t.user_attrs.get("error")
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def _write_csv(rows: list[dict], path: Path) -> None:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    tmp.replace(path)


def _versions() -> dict:
    import optuna
    import ray
    import torch

    from autosoft import __version__
    return {"autosoft": __version__, "torch": torch.__version__, "ray": ray.__version__,
            "optuna": optuna.__version__, "python": sys.version.split()[0]}


def _write_outputs(study, out: Path, settings: dict, metrics: list[str], modes: list[str]) -> dict:
    """policy.json, trials.csv, the plots; returns what SearchResult needs."""
    from optuna.trial import TrialState

    from autosoft.policy import Policy

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pareto: list = []
    best = None
    if complete:
        if len(metrics) > 1:
            pareto = sorted(study.best_trials, key=lambda t: t.number)
            pool = pareto
        else:
            pool = complete
        pick = max if modes[0] == "max" else min
        best = pick(pool, key=lambda t: t.values[0])
    rows = _trial_rows(study, metrics, {t.number for t in pareto})
    _write_csv(rows, out / "trials.csv")

    def export(trial, path: Path) -> Path:
        fixed = trial.user_attrs.get("fixed_policy")
        data = dict(trial.user_attrs["policy"])
        data["name"] = fixed or f"search-{settings['dataset']}-trial{trial.number}"
        data["provenance"] = {
            "dataset": settings["dataset"], "space": settings["space"], "proxy": settings["proxy"],
            "objectives": metrics, "scores": dict(zip(metrics, trial.values)), "trial": trial.number,
            "fixed_policy": fixed, "seed": settings["seed"], "trials_finished": len(_finished(study)),
            "budget": settings["budget"], "search_dir": str(out), "versions": _versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        return Policy.from_dict(data, source=f"trial {trial.number}").save(path)

    policy_path = export(best, out / "policy.json") if best is not None else None
    if len(pareto) > 0:
        (out / "pareto").mkdir(exist_ok=True)
        for t in pareto:
            export(t, out / "pareto" / f"trial-{t.number}.json")

    finished = [r for r in rows if r["state"] != "interrupted" and r["state"] != "running"]
    _plot(out, finished, pareto, metrics, modes)
    return {"policy_path": policy_path, "best_trial": best.number if best else None,
            "best_scores": dict(zip(metrics, best.values)) if best else {}, "rows": rows,
            "pareto": [t.number for t in pareto]}


def _plot(out: Path, rows: list[dict], pareto: list, metrics: list[str], modes: list[str]) -> None:
    from autosoft import plots
    if not rows:
        return
    # Stopped trials show their score when ASHA stopped them; failed ones have none.
    scores = [r[metrics[0]] if r["state"] != "failed" else None for r in rows]
    try:
        plots.search_history(scores, out / "search_history.png", objective_name=metrics[0],
                             maximize=modes[0] == "max", stopped=[r["state"] == "stopped" for r in rows])
        if len(metrics) > 1:
            done = [r for r in rows if r["state"] == "complete"]
            if done:
                plots.pareto_front([(r[metrics[0]], r[metrics[1]]) for r in done],
                                   [bool(r["pareto"]) for r in done], out / "pareto_front.png",
                                   names=(metrics[0], metrics[1]))
    except Exception as e:  # a plot must never cost the search its results (written above)
        warnings.warn(f"could not draw the search plots in {out}: {type(e).__name__}: {e}")


# ---- Ray ----------------------------------------------------------------------------
def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Start a quiet local Ray (all CPUs by default) or join a cluster; False if Ray was already up."""
    import ray
    if ray.is_initialized():
        return False
    # Ray warns on every start that token authentication is on (its default); say nothing of it.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # Workers import autosoft from this checkout when it is not installed into the environment.
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=False,
                  runtime_env={"env_vars": {"PYTHONPATH": path}})
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError) as e:
            raise AutosoftError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    return True


def _resources(cpus_per_trial, gpus_per_trial, proxy: dict) -> tuple[float, float]:
    on_gpu = proxy.get("device", "auto") != "cpu" and _has_gpu()
    cpus = cpus_per_trial if cpus_per_trial is not None else 1
    gpus = gpus_per_trial if gpus_per_trial is not None else (0.25 if on_gpu else 0)
    if cpus <= 0 or gpus < 0:
        raise AutosoftError(f"resources per trial: expected cpus > 0 and gpus >= 0, got cpus={cpus}, gpus={gpus}")
    return cpus, gpus


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def _max_concurrent(cpus: float, gpus: float) -> int:
    import ray
    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // cpus)
    if gpus:
        n = min(n, int(total.get("GPU", 0) // gpus))
    if n < 1:
        raise AutosoftError(f"a trial needs {cpus} CPU and {gpus} GPU but the Ray cluster has "
                            f"{total.get('CPU', 0)} CPU and {total.get('GPU', 0)} GPU")
    return n


# ---- the search ---------------------------------------------------------------------
def _settings(out: Path, *, resume: bool, fresh: dict) -> dict:
    """Write search.json for a new search, or check a resumed one matches it."""
    path = out / "search.json"
    if resume and out.exists():
        if not path.exists():
            raise AutosoftError(f"{out} is not a search folder (no search.json); choose another --out")
        saved = json.loads(path.read_text())
        for key in RESUME_KEYS + (("storage",) if fresh["storage"] else ()):
            if _comparable(key, saved.get(key)) != _comparable(key, fresh[key]):
                raise AutosoftError(f"--resume: {key} differs from the search in {out} "
                                    f"({saved.get(key)!r} there, {fresh[key]!r} now); rerun with the same settings")
        settings = {**saved, "budget": fresh["budget"], "proxy": fresh["proxy"]}
    else:
        out.mkdir(parents=True)
        settings = fresh
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    tmp.replace(path)
    return settings


def _comparable(key: str, value):
    # Threads and the data folder change speed and location, not the search: a resume may change them.
    if key == "proxy" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("threads", "data_dir", "download")}
    return value


def run_search(*, dataset: str, budget: int, space: str = "autoaugment+soft", out_dir=None, resume: bool = False,
               objectives: str | Sequence[str] = ("val_acc",), storage: str | None = None,
               ray_address: str | None = None, time_limit_s: float | None = None, proxy: str | dict = "auto",
               cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
               max_concurrent: int | None = None, seed: int = 0, data_dir=None,
               enqueue_baselines: bool | Sequence[str] = True, live: bool = True) -> SearchResult:
    """Search `budget` trials of `space` on the proxy task of `dataset`; write the results to `out_dir`.

    `resume=True` continues the search in `out_dir` (after Ctrl-C, a kill or a time
    limit): finished trials are kept, cut-short ones run again. See the module
    docstring for the output files.
    """
    try:
        import optuna
        from ray import tune
    except ImportError as e:
        raise AutosoftError(f"autosoft search needs Ray Tune and Optuna ({e}); "
                            "install them with: pip install 'ray[tune]' optuna") from None

    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise AutosoftError(f"budget: expected an integer >= 1 (the number of trials), got {budget!r}")
    out = Path(out_dir if out_dir is not None else f"runs/search-{dataset}").resolve()
    if out.exists() and not resume:
        raise AutosoftError(f"{out} already exists; pass --resume to continue that search, or choose another --out")
    time_limit_s = parse_time_limit(time_limit_s)
    metrics, modes = parse_objectives(objectives)
    space_obj = load_space(space)
    samples = sample_policies(space_obj, 16, seed=seed)  # a broken space file fails here, before Ray starts
    if enqueue_baselines is True:
        soft = any(p.soft_targets is not None for p in samples)
        baselines = list(BASELINES_SOFT if soft else BASELINES_HARD)
    else:
        baselines = list(enqueue_baselines or [])
    threads = max(1, int(cpus_per_trial)) if cpus_per_trial else 1
    proxy_cfg = proxy_config(dataset, proxy, seed=seed, data_dir=None if data_dir is None else str(data_dir),
                             threads=threads)
    cpus, gpus = _resources(cpus_per_trial, gpus_per_trial, proxy_cfg)
    space_id = str(Path(space).resolve()) if Path(str(space)).is_file() else space_obj.name
    fresh = {"dataset": dataset, "space": space_id, "objectives": metrics, "proxy": proxy_cfg, "seed": seed,
             "baselines": baselines, "budget": budget,
             "storage": storage,  # None: sqlite in the output folder
             "study_name": f"autosoft-{out.name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"}
    from autosoft.train import load_data, TrainConfig
    data = load_data(TrainConfig.from_dict(proxy_cfg))  # unknown data set or missing files: fail before Ray

    settings = _settings(out, resume=resume, fresh=fresh)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _open_storage(settings["storage"] or f"sqlite:///{out / 'study.db'}")
    study = optuna.create_study(storage=rdb, study_name=settings["study_name"],
                                directions=["maximize" if m == "max" else "minimize" for m in modes],
                                load_if_exists=True)
    if not study.get_trials(deepcopy=False):
        for name in baselines:
            study.enqueue_trial({}, user_attrs={"fixed_policy": name})
    # A resumed search must not draw the same random points again: offset the seed by the trials so far.
    sampler = _make_sampler(len(metrics), budget, seed + len(study.get_trials(deepcopy=False)))
    requeued = _requeue_interrupted(study)
    finished_before = len(_finished(study))
    remaining = budget - finished_before
    start = time.time()
    if live and (resume or requeued):
        print(f"[search] resuming {out}: {finished_before} trials finished, {requeued} cut short "
              f"(enqueued again), {max(remaining, 0)} to go", flush=True)

    if remaining > 0:
        started_ray = init_ray(ray_address)
        try:
            concurrent = max_concurrent or _max_concurrent(cpus, gpus)
            stopped: set[str] = set()
            searcher = _make_searcher(space_obj, metrics=metrics, modes=modes, sampler=sampler,
                                      study_name=settings["study_name"], storage=rdb,
                                      epochs=proxy_cfg["epochs"], stopped=stopped)
            view = _make_live_view(searcher, budget=budget, metric=metrics[0], live=live)
            trainable = tune.with_resources(tune.with_parameters(_run_trial, proxy=proxy_cfg, data=data),
                                            {"cpu": cpus, "gpu": gpus})
            run_index = len(list((out / "ray").glob("run-*"))) + 1 if (out / "ray").exists() else 1
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, scheduler=_make_scheduler(proxy_cfg["epochs"], stopped),
                    num_samples=remaining, max_concurrent_trials=concurrent, time_budget_s=time_limit_s,
                    reuse_actors=True,  # a new actor per trial costs seconds (Python start, torch import)
                    trial_name_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}",
                    trial_dirname_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}"),
                run_config=tune.RunConfig(
                    storage_path=str(out / "ray"), name=f"run-{run_index}", verbose=0, callbacks=[view],
                    failure_config=tune.FailureConfig(max_failures=0)),
            )
            with _quiet_tune():
                tuner.fit()
        finally:
            if started_ray:
                import ray
                ray.shutdown()
        _requeue_interrupted(study)

    outputs = _write_outputs(study, out, settings, metrics, modes)
    finished = len(_finished(study))
    if finished and all(r["state"] == "failed" for r in outputs["rows"] if r["state"] != "interrupted"):
        first = next(r for r in outputs["rows"] if r["state"] == "failed")
        raise AutosoftError(f"all {finished} trials failed; the first (trial {first['number']}): {first['error']}")
    return SearchResult(out_dir=out, policy_path=outputs["policy_path"], best_trial=outputs["best_trial"],
                        best_scores=outputs["best_scores"], objectives=metrics, trials=outputs["rows"],
                        finished=finished, budget=budget, complete=finished >= budget,
                        pareto=outputs["pareto"], wall_time_s=time.time() - start)


class _quiet_tune:
    """Our live line replaces Tune's console output.

    Ray 2.60's default ("new") output engine prints its experiment table even at
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


# ---- command line -------------------------------------------------------------------
def add_search_parser(subparsers) -> argparse.ArgumentParser:
    """The `autosoft search` subcommand (called by autosoft.cli)."""
    p = subparsers.add_parser("search", help="search an augmentation policy jointly with its soft targets",
                              description="Search augmentation ops, probabilities and magnitudes together with "
                                          "the soft-target curve on a proxy task (Ray Tune + Optuna + ASHA), "
                                          "then export the best policy.")
    p.add_argument("--dataset", required=True, help="cifar10 | cifar100 | cifar100-coarse | svhn | imagefolder:PATH")
    p.add_argument("--budget", type=int, required=True, help="number of trials (known policies run first)")
    p.add_argument("--space", default="autoaugment+soft",
                   help=f"{' | '.join(SPACE_NAMES)} | a space file (.py); see 'autosoft show spaces'")
    p.add_argument("--out", help="output folder (default runs/search-DATASET); never overwritten")
    p.add_argument("--resume", action="store_true", help="continue the search in --out; finished trials are kept")
    p.add_argument("--objective", default="acc", help="acc (default) | ece | nll, or two joined: acc,ece")
    p.add_argument("--storage", help="Optuna database URL (default sqlite:///OUT/study.db)")
    p.add_argument("--ray-address", help="join this Ray cluster (e.g. auto, or ray://host:10001)")
    p.add_argument("--time-limit", help="stop starting trials after this long: 600, 30m, 1.5h (--resume continues)")
    p.add_argument("--proxy", default="auto", choices=("auto", "cpu", "gpu"),
                   help="proxy-task preset (default: gpu when a GPU is visible)")
    p.add_argument("--config", metavar="FILE", help="JSON file of proxy settings overriding the preset")
    p.add_argument("--epochs", type=int, help="proxy epochs per trial")
    p.add_argument("--train-size", type=int, help="proxy train subset size")
    p.add_argument("--val-size", type=int, help="validation images held out of train (scores the trials)")
    p.add_argument("--model", help="proxy model: proxy | resnet18 | wrn40_2 | wrn28_10")
    p.add_argument("--width", type=int, help="width of the proxy model")
    p.add_argument("--cpus-per-trial", type=float, help="CPU threads per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPU fraction per trial (default 0.25 on a GPU, else 0)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as resources allow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baselines", action="store_true", help="do not run the known policies first")
    from autosoft.cli import add_data_flags
    add_data_flags(p)
    p.set_defaults(func=search_command)
    return p


def search_command(args) -> int:
    proxy: dict[str, Any] = {"preset": args.proxy}
    if args.config:
        from autosoft.cli import read_json_object
        proxy.update(read_json_object(args.config, "proxy settings"))
    for flag, key in (("epochs", "epochs"), ("train_size", "train_size"), ("val_size", "val_size"),
                      ("model", "model")):
        if getattr(args, flag) is not None:
            proxy[key] = getattr(args, flag)
    if args.download:
        proxy["download"] = True
    if args.width is not None:
        proxy["model_kwargs"] = {**proxy.get("model_kwargs", {}), "width": args.width}
    if args.budget < 1:
        raise AutosoftError(f"--budget: expected an integer >= 1 (the number of trials), got {args.budget}")
    result = run_search(dataset=args.dataset, budget=args.budget, space=args.space, out_dir=args.out,
                        resume=args.resume, objectives=args.objective, storage=args.storage,
                        ray_address=args.ray_address, time_limit_s=parse_time_limit(args.time_limit),
                        proxy=proxy, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                        max_concurrent=args.max_concurrent, seed=args.seed, data_dir=args.data_dir,
                        enqueue_baselines=not args.no_baselines)
    print(repr(result))
    if result.policy_path:
        print(f"best policy: {result.policy_path}\nretrain with: autosoft train --dataset {args.dataset} "
              f"--policy {result.policy_path}")
    if not result.complete:
        print(f"stopped after {result.finished}/{result.budget} trials; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    return 0
