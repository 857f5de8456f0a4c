"""`run_search`: check the settings, open the study, run the trials in Ray Tune, write the results."""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from autosoft.errors import AutosoftError
from autosoft.search import compat, record, settings as _settings
from autosoft.search.spaces import load_space, make_sampler, sample_policies, space_id


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


def run_search(*, dataset: str, budget: int, space: str = "autoaugment+soft", out_dir=None, resume: bool = False,
               objectives: str | Sequence[str] = ("val_acc",), storage: str | None = None,
               ray_address: str | None = None, time_limit_s: str | float | None = None, proxy: str | dict = "auto",
               cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
               max_concurrent: int | None = None, seed: int = 0, data_dir=None,
               enqueue_baselines: bool | Sequence[str] = True, live: bool = True) -> SearchResult:
    """Search `budget` trials of `space` on the proxy task of `dataset`; write the results to `out_dir`.

    `resume=True` continues the search in `out_dir` (after Ctrl-C, a kill or a time
    limit): finished trials are kept, cut-short ones run again. `time_limit_s` is
    seconds or a duration such as "30m". See `autosoft.search` for the output files.
    """
    try:
        import optuna  # noqa: F401
        from ray import tune
    except ImportError as e:
        raise AutosoftError(f"autosoft search needs Ray Tune and Optuna ({e}); "
                            "install them with: pip install 'ray[tune]' optuna") from None

    # Every setting is checked before anything is written or Ray starts.
    budget = _settings.check_budget(budget)
    out = _settings.output_folder(out_dir, dataset, resume=resume)
    time_limit_s = _settings.parse_time_limit(time_limit_s)
    metrics, modes = _settings.parse_objectives(objectives)
    space_obj = load_space(space)
    samples = sample_policies(space_obj, 16, seed=seed)  # a broken space file fails here, before Ray starts
    baselines = _settings.choose_baselines(enqueue_baselines, samples)
    threads = max(1, int(cpus_per_trial)) if cpus_per_trial else 1
    proxy_cfg = _settings.proxy_config(dataset, proxy, seed=seed,
                                       data_dir=None if data_dir is None else str(data_dir), threads=threads)
    cpus, gpus = compat.trial_resources(cpus_per_trial, gpus_per_trial, proxy_cfg)
    fresh = {"dataset": dataset, "space": space_id(space), "objectives": metrics, "proxy": proxy_cfg, "seed": seed,
             "baselines": baselines, "budget": budget,
             "storage": storage,  # None: sqlite in the output folder
             "study_name": f"autosoft-{out.name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"}
    from autosoft.train import TrainConfig, load_data
    data = load_data(TrainConfig.from_dict(proxy_cfg))  # unknown data set or missing files: fail before Ray

    settings = _settings.save_settings(out, resume=resume, fresh=fresh)
    rdb = record.open_storage(settings["storage"] or f"sqlite:///{out / 'study.db'}")
    study = record.open_study(rdb, settings["study_name"], modes, baselines)
    # A resumed search must not draw the same random points again: offset the seed by the trials so far.
    sampler = make_sampler(len(metrics), budget, seed + len(study.get_trials(deepcopy=False)))
    requeued = record.requeue_interrupted(study)
    finished_before = sum(record.state_counts(study).values())
    remaining = budget - finished_before
    start = time.time()
    if live and (resume or requeued):
        print(f"[search] resuming {out}: {finished_before} trials finished, {requeued} cut short "
              f"(enqueued again), {max(remaining, 0)} to go", flush=True)

    if remaining > 0:
        started_ray = compat.init_ray(ray_address)
        try:
            concurrent = max_concurrent or compat.max_concurrent(cpus, gpus)
            stopped: set[str] = set()
            searcher = compat.make_searcher(space_obj, metrics=metrics, modes=modes, sampler=sampler,
                                            study_name=settings["study_name"], storage=rdb,
                                            epochs=proxy_cfg["epochs"], stopped=stopped)
            view = compat.make_live_view(searcher, budget=budget, metric=metrics[0], mode=modes[0], live=live)
            trainable = tune.with_resources(tune.with_parameters(compat.run_trial, proxy=proxy_cfg, data=data),
                                            {"cpu": cpus, "gpu": gpus})
            run_index = len(list((out / "ray").glob("run-*"))) + 1 if (out / "ray").exists() else 1
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, scheduler=compat.make_scheduler(proxy_cfg["epochs"], stopped),
                    num_samples=remaining, max_concurrent_trials=concurrent, time_budget_s=time_limit_s,
                    reuse_actors=True,  # a new actor per trial costs seconds (Python start, torch import)
                    trial_name_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}",
                    trial_dirname_creator=lambda t: f"trial-{t.config.get('trial_number', t.trial_id)}"),
                run_config=tune.RunConfig(
                    storage_path=str(out / "ray"), name=f"run-{run_index}", verbose=0, callbacks=[view],
                    failure_config=tune.FailureConfig(max_failures=0)),
            )
            with compat.quiet_tune():
                tuner.fit()
        finally:
            if started_ray:
                import ray
                ray.shutdown()
        record.requeue_interrupted(study)

    outputs = record.write_outputs(study, out, settings, metrics, modes)
    counts, finished = outputs["counts"], outputs["finished"]
    if finished and counts["failed"] == finished:
        first = next(r for r in outputs["rows"] if r["state"] == "failed")
        raise AutosoftError(f"all {finished} trials failed; the first (trial {first['number']}): {first['error']}")
    return SearchResult(out_dir=out, policy_path=outputs["policy_path"], best_trial=outputs["best_trial"],
                        best_scores=outputs["best_scores"], objectives=metrics, trials=outputs["rows"],
                        finished=finished, budget=budget, complete=finished >= budget,
                        pareto=outputs["pareto"], wall_time_s=time.time() - start)
