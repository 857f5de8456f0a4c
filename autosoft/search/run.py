"""`run_search`: check the settings, open the study, run the trials in Ray Tune, write the results."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from autosoft.config import TrainConfig, check_model, few_steps_warning
from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_text
from autosoft.search import live_view, proxy as proxy_rules, ray_cluster, record, settings as _settings, tune_glue
from autosoft.search import confirm as confirm_stage, rungs as rung_stage
from autosoft.search.spaces import SearchSpace, load_space, make_sampler, sample_policies, space_id
from autosoft.search.trials import best_trial, complete_trials, state_counts
from autosoft.train import load_data, open_train_split


@dataclass
class SearchResult:
    out_dir: Path
    policy_path: Path | None      # the exported policy: the confirmation winner, else the proxy's best
    best_trial: int | None        # the proxy's best trial
    best_scores: dict[str, float]
    objectives: list[str]
    trials: list[dict]            # the rows of trials.csv
    finished: int                 # trials that count towards the budget
    budget: int
    complete: bool                # the budget was reached
    pareto: list[int] = field(default_factory=list)   # trial numbers on the front (two objectives)
    wall_time_s: float = 0.0
    verdict: str | None = None    # the confirmation stage's verdict in words (None: no confirmation)
    confirmation: list[dict] = field(default_factory=list)   # per policy: name, kind, proxy score, scores
    proxy_rank_correlation: float | None = None   # Spearman, proxy vs confirmation, over confirmed policies
    proxy_ranked: int = 0                         # how many policies that correlation ranks
    chance: str | None = None     # set when the best proxy score is within noise of chance
    stage_times_s: dict = field(default_factory=dict)   # wall seconds per stage, this start
    # --rungs: per cost (the trials' first), Spearman of its scores vs the confirmation's means
    rung_correlations: list[dict] = field(default_factory=list)

    def __repr__(self) -> str:
        states = {}
        for row in self.trials:
            states[row["state"]] = states.get(row["state"], 0) + 1
        best = ", ".join(f"{k}={v:.4f}" for k, v in self.best_scores.items()) or "none yet"
        return (f"SearchResult({self.finished}/{self.budget} trials {states}, best trial {self.best_trial}: "
                f"{best}, policy {self.policy_path}, {self.wall_time_s:.0f} s)")


class StageTimes:
    """The wall seconds of each stage (trials, confirmation) of one start of a search, kept as
    that start's line of wall_times.jsonl.

    The line is rewritten every `every` seconds while a stage runs, with "running": true, and
    for the last time when the start ends (without it): a start killed without notice (SIGKILL,
    the end of a session, a power cut) still leaves its time, short by at most `every` seconds,
    and its line says it did not end. The line names the host and process id of its start, so a
    reader on that host can tell a start still running from one killed a moment ago. Lines of
    earlier starts are kept as they are.
    """

    def __init__(self, path: Path, every: float = 30.0):
        self.path, self.every = path, every
        self.started = time.time()
        self._process = {"host": socket.gethostname(), "pid": os.getpid()}   # whose start the line is
        self.times: dict[str, float] = {}
        self._current: tuple[str, float] | None = None
        self._keep: list[str] | None = None   # the earlier starts' lines, read at the first write
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time the block as stage `name` (its time counts also when the block raises)."""
        with self._lock:
            self._current = (name, time.time())
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="autosoft-wall-times", daemon=True)
            self._ticker.start()
        self._write(running=True)
        try:
            yield
        finally:
            with self._lock:
                self.times[name] = self.times.get(name, 0.0) + time.time() - self._current[1]
                self._current = None

    def close(self) -> None:
        """The start has ended: its line, final (nothing is written if no stage ran)."""
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
            self._write(running=False)

    def _tick(self) -> None:
        while not self._done.wait(self.every):
            self._write(running=True)

    def seconds(self) -> dict[str, float]:
        """Each stage's wall seconds so far (the running one's up to now), to 0.1 s."""
        with self._lock:
            times = dict(self.times)
            if self._current:
                times[self._current[0]] = times.get(self._current[0], 0.0) + time.time() - self._current[1]
        return {k: round(v, 1) for k, v in times.items()}

    def _write(self, *, running: bool) -> None:
        line = {"started": _dt.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
                **self.seconds(), **({"running": True} if running else {}), **self._process}
        with self._lock:  # the ticker and the main thread: one writer at a time
            if self._keep is None:
                self._keep = self.path.read_text().splitlines(keepends=True) if self.path.exists() else []
            atomic_write_text(self.path, "".join(self._keep) + json.dumps(line) + "\n")  # a kill leaves a whole file


@dataclass(frozen=True)
class ConfirmationPlan:
    """The confirmation stage: the `top_k` best searched policies and the baselines, retrained at
    `config` (the target at `fidelity` of its epochs, on one fixed validation split) and raced:
    `seeds` each to start, up to `max_seeds` for those within noise of the best, no new round
    after `time_limit_s`."""
    top_k: int
    seeds: int
    max_seeds: int
    fidelity: float
    time_limit_s: float | None
    config: TrainConfig

    def settings(self) -> dict:
        """As search.json keeps it."""
        return {"top_k": self.top_k, "seeds": self.seeds, "max_seeds": self.max_seeds, "fidelity": self.fidelity,
                "time_limit_s": self.time_limit_s, "config": self.config.to_dict()}


@dataclass(frozen=True)
class RungPlan:
    """Successive halving over train images (`autosoft.search.rungs`): the trials at
    `trial_cost` of the target's cost, the best 1/`reduction_factor` of each rung retrained at
    the next of `costs`, with `configs` (the proxy with the train subset of that cost)."""
    trial_cost: float
    costs: tuple[float, ...]
    reduction_factor: int
    configs: tuple[TrainConfig, ...]
    notes: tuple[str, ...]        # the sizing rules that fired for the later rungs, in words

    def settings(self) -> dict:
        """As search.json keeps it."""
        return {"trial_cost": self.trial_cost, "costs": list(self.costs), "reduction_factor": self.reduction_factor,
                "rules": list(self.notes), "configs": [c.to_dict() for c in self.configs]}


@dataclass(frozen=True)
class SearchPlan:
    """What one start of a search does, every setting checked: nothing is written and Ray is
    not started until a plan stands. Configs are TrainConfigs here, dicts only at the Ray and
    search.json boundaries."""
    out: Path
    resume: bool
    dataset: str
    budget: int
    space: SearchSpace
    space_id: str
    metrics: tuple[str, ...]      # the objectives' metric names; the first decides the ranking
    modes: tuple[str, ...]        # "max" / "min", one per metric
    sampler: str
    seed: int
    baselines: tuple[str, ...]    # known policies run first and always confirmed
    early_stopping: str
    time_limit_s: float | None    # for the trials
    target: TrainConfig           # the training the policy is for
    proxy: TrainConfig            # what each trial trains
    proxy_notes: tuple[str, ...]  # how the proxy was made, in words
    confirmation: ConfirmationPlan
    rungs: RungPlan | None        # successive halving after the trials (None: off)
    n_train: int                  # images in the train split
    cpus: float                   # per trial and per confirmation run
    gpus: float
    max_concurrent: int | None    # None: as many as the cluster fits
    ray_address: str | None
    storage: str | None           # None: sqlite in the output folder
    reuse_from: tuple[Path, ...]  # searches whose finished confirmation runs are copied
    live: bool

    def settings(self) -> dict:
        """search.json for a new search (a resume checks the saved one against it)."""
        return {"dataset": self.dataset, "space": self.space_id, "objectives": list(self.metrics),
                "proxy": self.proxy.to_dict(), "proxy_rules": list(self.proxy_notes), "target": self.target.to_dict(),
                "sampler": self.sampler, "seed": self.seed, "baselines": list(self.baselines), "budget": self.budget,
                "confirmation": self.confirmation.settings(), "early_stopping": self.early_stopping,
                "rungs": self.rungs.settings() if self.rungs else None,
                "storage": self.storage, "study_name": f"autosoft-{self.out.name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"}


def run_search(*, dataset: str, budget: int, space: str = "autoaugment+soft", out_dir=None, resume: bool = False,
               objectives: str | Sequence[str] = _settings.DEFAULT_OBJECTIVE, storage: str | None = None,
               ray_address: str | None = None, time_limit_s: str | float | None = None, proxy: str | dict = "auto",
               target: str | dict | None = None, confirm: int | None = None, confirm_seeds: int | None = None,
               confirm_fidelity: float = 1.0, confirm_max_seeds: int | None = None,
               confirm_time_limit_s: str | float | None = None, sampler: str = "tpe", early_stopping: str | None = None,
               cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
               max_concurrent: int | None = None, seed: int = 0, data_dir=None,
               enqueue_baselines: bool | Sequence[str] = True, live: bool = True,
               image_size: int | None = None, test_fraction: float | None = None,
               reuse_confirmation: Sequence = (), rungs: str | Sequence | None = None,
               reduction_factor: int | None = None) -> SearchResult:
    """Search `budget` trials of `space` on a proxy of the target training, confirm the best
    ones at the target's fidelity, and write the results to `out_dir`.

    `target`: the training the policy is for (a TrainConfig dict or a JSON file; default:
    `autosoft train`'s defaults for `dataset`); the proxy is derived from it unless `proxy`
    names a preset. `objectives`: "robust" (default: clean validation accuracy with occlusion
    and shift accuracy), "acc", ... (`autosoft.search.settings.OBJECTIVES`). `confirm` searched
    policies (default by device; 0 skips the stage) and the known baselines are retrained at
    `confirm_fidelity` of the target's epochs on one validation split and raced: `confirm_seeds`
    seeds each to start, more for those within noise of the best, up to `confirm_max_seeds`
    (no new round after `confirm_time_limit_s`); the winner on the mean is exported; `reuse_confirmation` names other search folders
    whose finished confirmation runs of the same policy, seed and config are copied instead of
    trained again (the baselines, when searches share a target). `rungs` ("1/16,1/4"):
    successive halving over train images, the trials at the first share of the target's cost
    and the best 1/`reduction_factor` (default 4) of each rung, with every baseline, retrained
    at the next; the confirmation takes the last rung's best. `early_stopping`: "off" (default) or "asha" (first rung
    at 2/3 of the proxy's schedule). `sampler`: "tpe" (the search) or "random"
    (the control). `resume=True` continues the search in `out_dir`: finished trials and
    confirmation runs are kept, cut-short ones run again. `time_limit_s` (seconds or "30m")
    bounds the trials. See `autosoft.search` for the output files.
    """
    plan, data, rdb = _plan(**locals())
    settings, study, rdb = _open_study(plan, rdb)
    # A resumed search must not draw the same random points again: offset the seed by the trials so far.
    trial_sampler = make_sampler(len(plan.metrics), plan.budget, plan.seed + len(study.get_trials(deepcopy=False)),
                                 plan.sampler)
    requeued = record.requeue_interrupted(study)
    finished_before = sum(state_counts(study).values())
    remaining = plan.budget - finished_before
    clock = StageTimes(plan.out / "wall_times.jsonl")
    if plan.live:
        _announce(plan, data, finished_before=finished_before, requeued=requeued, remaining=remaining)

    ray = _RayStarter(plan.ray_address)
    verdict = confirmed = None
    try:
        if remaining > 0:
            ray.start()
            _run_trials(plan, settings, study, rdb, data, trial_sampler, remaining, clock)
        outputs, extra, chance, confirming = _proxy_results(plan, settings, study, data)
        rung_rows = None
        if confirming:
            entries = record.candidate_trials(study)
            if plan.rungs:
                entries, rung_rows = _run_rungs(plan, settings, entries, clock, ray)
            verdict, confirmed = _confirm(plan, settings, entries, clock, ray)
            if rung_rows:
                verdict.rung_correlations = rung_stage.rank_correlations(rung_rows, confirmed, plan.metrics[0])
            extra["confirmation"] = _confirmation_provenance(verdict, plan)
            outputs["policy_path"] = _export_confirmed(plan, settings, study, verdict, outputs, extra)
    finally:
        ray.shutdown()
        clock.close()

    return SearchResult(out_dir=plan.out, policy_path=outputs["policy_path"], best_trial=outputs["best_trial"],
                        best_scores=outputs["best_scores"], objectives=list(plan.metrics), trials=outputs["rows"],
                        finished=outputs["finished"], budget=plan.budget, complete=outputs["finished"] >= plan.budget,
                        pareto=outputs["pareto"], wall_time_s=time.time() - clock.started,
                        verdict=verdict.text if verdict else None,
                        confirmation=[c.summary() for c in confirmed or ()],
                        proxy_rank_correlation=verdict.proxy_rank_correlation if verdict else None,
                        proxy_ranked=verdict.proxy_ranked if verdict else 0,
                        chance=chance["message"] if chance else None,
                        stage_times_s=clock.seconds(),
                        rung_correlations=verdict.rung_correlations if verdict else [])


def _plan(*, dataset, budget, space, out_dir, resume, objectives, storage, ray_address, time_limit_s, proxy, target,
          confirm, confirm_seeds, confirm_fidelity, confirm_max_seeds, confirm_time_limit_s, sampler, early_stopping,
          cpus_per_trial, gpus_per_trial, max_concurrent, seed, data_dir, enqueue_baselines, live, image_size,
          test_fraction, reuse_confirmation, rungs, reduction_factor):
    """Check every setting and read the proxy's data, writing nothing: the plan, the data, and
    the study's storage when --storage named one (a bad URL fails here)."""
    try:
        import optuna  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as e:
        raise AutosoftError(f"autosoft search needs Ray Tune and Optuna ({e}); "
                            "install them with: pip install 'ray[tune]' optuna") from None
    budget = _settings.check_budget(budget)
    out = _settings.output_folder(out_dir, dataset, resume=resume)
    time_limit_s = _settings.parse_time_limit(time_limit_s)
    reuse_from = _settings.check_reuse_folders(reuse_confirmation)
    metrics, modes = _settings.parse_objectives(objectives)
    make_sampler(len(metrics), budget, seed, sampler)  # an unknown sampler fails here
    early_stopping = _settings.check_early_stopping(early_stopping)
    promotion = _settings.check_rungs(rungs, reduction_factor)
    if promotion:
        proxy = _trials_at(proxy, promotion["trial_cost"])
    space_obj = load_space(space)
    samples = sample_policies(space_obj, 16, seed=seed)  # a broken space file fails here, before Ray starts
    baselines = _settings.choose_baselines(enqueue_baselines, samples)
    data_dir = None if data_dir is None else str(data_dir)
    target_cfg = proxy_rules.target_config(dataset, target, data_dir=data_dir, image_size=image_size,
                                           test_fraction=test_fraction)
    download = bool(isinstance(proxy, dict) and proxy.get("download")) or target_cfg["download"]
    # Missing data fails now. An image folder is only listed here (its carved test split left out:
    # the search never sees it); load_data below decodes the images the proxy keeps.
    train_set = open_train_split(TrainConfig.from_dict({**target_cfg, "download": download}))
    n_train = len(train_set)
    threads = max(1, int(cpus_per_trial)) if cpus_per_trial else 1
    proxy_cfg, proxy_notes = proxy_rules.proxy_config(dataset, proxy, target=target_cfg, n_train=n_train, seed=seed,
                                                      data_dir=data_dir, threads=threads,
                                                      early_stopping=early_stopping)
    cpus, gpus = tune_glue.trial_resources(cpus_per_trial, gpus_per_trial, proxy_cfg)
    stage = _settings.confirmation_plan(confirm, confirm_seeds, confirm_fidelity, on_gpu=gpus > 0,
                                        max_seeds=confirm_max_seeds, time_limit_s=confirm_time_limit_s)
    rung_plan = None
    if promotion:
        if not stage["top_k"]:
            raise AutosoftError("--rungs: the last rung's best go to the confirmation stage, and --confirm 0 skips "
                                "it; give --confirm K >= 1, or drop --rungs")
        configs, notes = [], []
        for cost in promotion["costs"]:
            config, rules = proxy_rules.rung_config(proxy_cfg, target_cfg, n_train, cost)
            configs.append(TrainConfig.from_dict(config))
            notes += [f"rung {cost:g}: {rule}" for rule in rules]
        rung_plan = RungPlan(trial_cost=promotion["trial_cost"], costs=tuple(promotion["costs"]),
                             reduction_factor=promotion["reduction_factor"], configs=tuple(configs),
                             notes=tuple(notes))
    # One validation split for every confirmation run: a seed changes the model and the draws, not the split.
    confirm_cfg = TrainConfig.from_dict({**proxy_rules.confirmation_config(target_cfg, proxy_cfg, stage["fidelity"]),
                                         "split_seed": proxy_rules.CONFIRM_SPLIT_SEED})
    proxy_train = TrainConfig.from_dict(proxy_cfg)
    data = load_data(proxy_train, train_set=train_set)  # the split read above, not read (decoded) again
    shape = data.train.num_classes, data.train.images.shape[1], data.train.images.shape[-1]
    check_model(proxy_train, *shape)  # an unknown model: fail now, not in every trial
    if stage["top_k"]:
        check_model(confirm_cfg, *shape)
        if confirm_cfg.val_size >= n_train:
            raise AutosoftError(f"confirmation val_size {confirm_cfg.val_size}: leaves nothing to train on "
                                f"in the {n_train} train images of {dataset}; lower the target's val_size")
    # A bad --storage URL fails before anything is written (a sqlite file in a folder still to be made: after).
    db = record.sqlite_file(storage) if storage else None
    rdb = record.open_storage(storage) if storage and (db is None or db.parent.is_dir()) else None
    ray_cluster.check_ray_address(ray_address)  # a cluster that is not there: fail in seconds, not minutes
    tune_glue.check_fits(cpus, gpus, ray_address)  # a GPU share with no GPU
    plan = SearchPlan(
        out=out, resume=resume, dataset=dataset, budget=budget, space=space_obj, space_id=space_id(space),
        metrics=tuple(metrics), modes=tuple(modes), sampler=sampler, seed=seed, baselines=tuple(baselines),
        early_stopping=early_stopping, time_limit_s=time_limit_s, target=TrainConfig.from_dict(target_cfg),
        proxy=proxy_train, proxy_notes=tuple(proxy_notes), confirmation=ConfirmationPlan(**stage, config=confirm_cfg),
        rungs=rung_plan,
        n_train=n_train, cpus=cpus, gpus=gpus, max_concurrent=max_concurrent, ray_address=ray_address,
        storage=storage, reuse_from=tuple(reuse_from), live=live)
    return plan, data, rdb


def _trials_at(proxy, cost: float) -> dict:
    """The proxy settings with the trials at the first rung's `cost` (a derived proxy only)."""
    settings = dict(proxy) if isinstance(proxy, dict) else {"preset": proxy}
    if settings.get("preset", "auto") != "auto":
        raise AutosoftError(f"--rungs: size the proxy derived from the target; the {settings['preset']!r} preset "
                            "has its own size (drop --rungs, or use --proxy auto)")
    sized = sorted(set(settings) & set(proxy_rules.RUNG_FIELDS))
    if sized:
        raise AutosoftError(f"--rungs: each rung's {', '.join(sized)} follow from its share of the target's cost; "
                            "drop those proxy settings (or --rungs)")
    given = settings.get("cost")
    if given is not None and proxy_rules.check_cost(given) != cost:
        raise AutosoftError(f"--proxy-cost {given} and --rungs both set the trials' cost (the first rung, {cost:g}); "
                            "drop --proxy-cost")
    return {**settings, "cost": cost}


def _open_study(plan: SearchPlan, rdb):
    """search.json written (or a resume's checked), the Optuna study opened: settings in force, study, storage."""
    settings = _settings.save_settings(plan.out, resume=plan.resume, fresh=plan.settings())
    study_url = settings["storage"] or f"sqlite:///{plan.out / 'study.db'}"
    if rdb is None or study_url != plan.storage:
        rdb = record.open_storage(study_url)
    study = record.open_study(rdb, settings["study_name"], list(plan.modes), list(plan.baselines))
    return settings, study, rdb


def _announce(plan: SearchPlan, data, *, finished_before: int, requeued: int, remaining: int) -> None:
    proxy, target = plan.proxy, plan.target
    print(f"[search] proxy: {proxy.model} {proxy.model_kwargs or ''}, {proxy.epochs} epochs "
          f"on {proxy.train_size} images, batch {proxy.batch_size}, "
          f"{proxy.val_size} validation images ({'; '.join(plan.proxy_notes)})", flush=True)
    # The target is what confirmation retrains and what `autosoft train` runs after the search.
    few = few_steps_warning(target, min(target.train_size or plan.n_train, plan.n_train - target.val_size),
                            flags="a --target-config FILE with batch_size, lr, epochs")
    if few:
        print(f"[search] warning: the target (what confirmation and the retrain run) {few.removeprefix('this ')}; "
              "the proxy keeps enough steps, the target does not", flush=True)
    if data.test_split is not None:
        split = data.test_split
        print(f"[search] {split['folder']} has no train/ and test/ sub-folders: {split['test_images']} images "
              f"({split['test_fraction']:g} of each class) are held out as its test split and never seen by the "
              f"search; 'autosoft train' holds out the same ones (test_split.json)", flush=True)
    if plan.resume or requeued:
        print(f"[search] resuming {plan.out}: {finished_before} trials finished, {requeued} cut short "
              f"(enqueued again), {max(remaining, 0)} to go", flush=True)


class _RayStarter:
    """Starts Ray once, when a stage first has work for it (a rerun over a finished search
    never does), and shuts down only a Ray it started."""

    def __init__(self, address: str | None):
        self.address, self.started = address, False

    def start(self) -> None:
        self.started = self.started or ray_cluster.init_ray(self.address)

    def shutdown(self) -> None:
        if self.started:
            import ray
            ray.shutdown()


def _run_trials(plan: SearchPlan, settings: dict, study, rdb, data, trial_sampler, remaining: int,
                clock: StageTimes) -> None:
    """The trials on Ray Tune: Optuna samples, the proxy trains, ASHA (if on) stops the poor."""
    from ray import tune

    metrics, modes, epochs = list(plan.metrics), list(plan.modes), plan.proxy.epochs
    concurrent = plan.max_concurrent or tune_glue.max_concurrent(plan.cpus, plan.gpus)
    stopped: set[str] = set()
    searcher = tune_glue.make_searcher(plan.space, metrics=metrics, modes=modes, sampler=trial_sampler,
                                       study_name=settings["study_name"], storage=rdb, epochs=epochs, stopped=stopped)
    scheduler = None if plan.early_stopping == "off" else \
        tune_glue.make_scheduler(epochs, stopped, proxy_rules.ASHA_GRACE, metric=metrics[0], mode=modes[0])
    view = live_view.make_live_view(searcher, budget=plan.budget, metric=metrics[0], mode=modes[0], live=plan.live)
    trainable = tune.with_resources(tune.with_parameters(tune_glue.run_trial, proxy=plan.proxy.to_dict(), data=data),
                                    {"cpu": plan.cpus, "gpu": plan.gpus})
    ray_dir = plan.out / "ray"
    run_index = len(list(ray_dir.glob("run-*"))) + 1 if ray_dir.exists() else 1
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler,
            num_samples=remaining, max_concurrent_trials=concurrent, time_budget_s=plan.time_limit_s,
            reuse_actors=True,  # a new actor per trial costs seconds (Python start, torch import)
            trial_name_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}",
            trial_dirname_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}"),
        run_config=tune.RunConfig(
            storage_path=str(ray_dir), name=f"run-{run_index}", verbose=0, callbacks=[view],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        with clock.stage("trials"), live_view.quiet_tune():
            tuner.fit()
    finally:
        record.requeue_interrupted(study)


def _proxy_results(plan: SearchPlan, settings: dict, study, data):
    """trials.csv, the plots and the proxy's best policy (policy.json, or proxy_best.json when a
    confirmation follows). Returns the outputs, the provenance to add to exported policies, the
    chance warning (or None), and whether the confirmation stage runs."""
    metrics, modes = list(plan.metrics), list(plan.modes)
    best = best_trial(complete_trials(study), modes[0])
    chance = proxy_rules.chance_note(best.values[0] if best else None,
                                     data.val.labels if data.val is not None else None, metrics[0])
    if chance and plan.live:
        print(f"[search] warning: {chance['message']}", flush=True)
    extra = {"proxy_rules": list(plan.proxy_notes), "target": plan.target.to_dict(), "sampler": plan.sampler}
    if chance:
        extra["chance"] = chance
    finished = sum(state_counts(study).values())
    confirming = plan.confirmation.top_k > 0 and finished >= plan.budget and best is not None and not chance
    outputs = record.write_outputs(study, plan.out, settings, metrics, modes, extra=extra,
                                   policy_file="proxy_best.json" if confirming else "policy.json")
    if finished and outputs["counts"]["failed"] == finished:
        first = next(r for r in outputs["rows"] if r["state"] == "failed")
        raise AutosoftError(f"all {finished} trials failed; the first (trial {first['number']}): {first['error']}")
    return outputs, extra, chance, confirming


def _run_rungs(plan: SearchPlan, settings: dict, trials: list[dict], clock: StageTimes, ray: _RayStarter):
    """Successive halving on Ray (`autosoft.search.rungs`), timed as stage "rungs" from its first
    run on: the last rung's entries for the confirmation, and rungs.csv's rows."""
    rungs, live, metric = plan.rungs, plan.live, plan.metrics[0]
    if live:
        print(f"[rungs] the best 1/{rungs.reduction_factor} of the trials (at {rungs.trial_cost:g} of the target's "
              f"cost) and the baselines retrained at " + ", then ".join(f"{c:g}" for c in rungs.costs)
              + f" of it, on {metric}", flush=True)
    done = [0]

    def on_done(cost, key, final, error):
        done[0] += 1
        if live:
            result = f"{metric} {final[metric]:.4f}" if final else f"failed: {error}"
            print(f"[rungs] run {done[0]}: {key[0]} at {cost:g}: {result}", flush=True)

    timing = contextlib.ExitStack()

    def first_run():
        timing.enter_context(clock.stage("rungs"))
        ray.start()

    with timing:
        return rung_stage.run_rungs(
            trials, [(cost, config.to_dict()) for cost, config in zip(rungs.costs, rungs.configs)],
            trial_cost=rungs.trial_cost, seed=settings["seed"], folder=plan.out / "rungs", metric=metric,
            maximize=plan.modes[0] == "max", reduction_factor=rungs.reduction_factor,
            baselines=settings["baselines"], cpus=plan.cpus, gpus=plan.gpus,
            max_concurrent=plan.max_concurrent or None, before_first_run=first_run, on_done=on_done)


def _confirm(plan: SearchPlan, settings: dict, trials: list[dict], clock: StageTimes, ray: _RayStarter):
    """The confirmation stage on Ray: candidates (the best of `trials`, the last rung's entries
    with --rungs), the race (finished runs read back), verdict, outputs.

    Ray is started and the stage timed only when a run is left to train: a rerun over a
    finished search reads the runs back, prints its verdict and records no start."""
    stage, metric, live = plan.confirmation, plan.metrics[0], plan.live
    config = stage.config.to_dict()
    maximize = plan.modes[0] == "max"
    # Every baseline is confirmed, also one that did not run as a trial (its proxy score is then unknown).
    candidates = confirm_stage.pick_candidates(trials, k=stage.top_k, maximize=maximize,
                                               baselines=settings["baselines"])
    seeds = [settings["seed"] + i for i in range(stage.max_seeds)]
    folder = plan.out / "confirm"
    reused = confirm_stage.reuse_runs(folder, candidates, config, seeds, plan.reuse_from, gpus=plan.gpus)
    if reused and live:
        print(f"[confirm] {len(reused)} finished runs of the same policy, seed and config copied from "
              f"{', '.join(map(str, plan.reuse_from))}: {' '.join(reused)}", flush=True)
    before = len(confirm_stage.finished_runs(folder, candidates, seeds))
    if live:
        print(f"[confirm] racing {len(candidates)} policies at {config['epochs']} epochs on {metric}: "
              f"{stage.seeds} seeds each, up to {stage.max_seeds} for those within noise of the best "
              f"({before} runs done before)", flush=True)
    done = [before]

    def on_done(key, final, error):
        done[0] += 1
        if live:
            result = f"{metric} {final[metric]:.4f}" if final else f"failed: {error}"
            print(f"[confirm] run {done[0]}: {key[0]} seed {key[1]}: {result}", flush=True)

    timing = contextlib.ExitStack()

    def first_run():  # the stage is timed from its first run on: a finished race records no start
        timing.enter_context(clock.stage("confirmation"))
        ray.start()

    with timing:
        finals, errors, time_limited = confirm_stage.run_confirmation(
            candidates, config, seeds, folder, initial=stage.seeds, metric=metric, maximize=maximize,
            cpus=plan.cpus, gpus=plan.gpus, max_concurrent=plan.max_concurrent or None,
            time_limit_s=stage.time_limit_s, before_first_run=first_run, on_done=on_done)
    confirmed = confirm_stage.summarize(candidates, finals, metric)
    if not any(c.scores for c in confirmed):
        first = next(iter(errors.items()), None)
        raise AutosoftError("confirmation: every run failed" + (f"; the first ({first[0][0]} seed {first[0][1]}): "
                                                                 f"{first[1]}" if first else ""))
    ended = confirm_stage.race_report(confirmed, maximize=maximize, cap=stage.max_seeds, time_limited=time_limited,
                                      failed={name for name, _ in errors})
    verdict = confirm_stage.judge(confirmed, maximize=maximize, metric=metric)
    verdict.race = ended
    if live:
        print(f"[confirm] race {ended}; seeds per policy: "
              + ", ".join(f"{c.candidate.name} {len(c.scores)}" for c in confirmed), flush=True)
    confirm_stage.write_outputs(confirmed, verdict, plan.out, metric, maximize)
    return verdict, confirmed


def _export_confirmed(plan: SearchPlan, settings: dict, study, verdict, outputs: dict, extra: dict) -> Path:
    """policy.json: the confirmation's winner; best_searched.json: the best searched policy (to
    try, or to compare, when a baseline won). Returns policy.json's path."""
    export = dict(settings=settings, metrics=list(plan.metrics), finished=outputs["finished"], out=plan.out,
                  extra=extra)
    path = record.export_policy(record.trial_of(study, verdict.winner.candidate.name), plan.out / "policy.json",
                                known=verdict.winner.candidate, **export)
    if verdict.best_searched is not None:
        record.export_policy(record.trial_of(study, verdict.best_searched.candidate.name),
                             plan.out / "best_searched.json", **export)
    return path


def _confirmation_provenance(verdict, plan: SearchPlan) -> dict:
    def stats(c):
        return None if c is None else c.summary()
    return {"metric": plan.metrics[0], "winner": stats(verdict.winner), "best_baseline": stats(verdict.best_baseline),
            "best_searched": stats(verdict.best_searched), "searched_won": verdict.searched_won,
            "margin": verdict.margin, "margin_se": verdict.margin_se, "paired_seeds": verdict.paired_seeds,
            "separated": verdict.separated, "race": verdict.race,
            "verdict": verdict.text, "proxy_rank_correlation": verdict.proxy_rank_correlation,
            "proxy_ranked": verdict.proxy_ranked, **plan.confirmation.settings(),
            **({"rung_correlations": verdict.rung_correlations} if verdict.rung_correlations else {})}
