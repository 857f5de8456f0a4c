"""Ray Tune, adapted to the search: the trial's resources, the trainable, the searcher, the scheduler.

Written for ray 2.60.0 (pyproject pins ray[tune]~=2.60.0); each reach into Ray's or Optuna's
private parts says what it relies on. Ray is imported inside the functions: importing this
module neither imports nor starts Ray. Here: the resources of a trial, counted as Ray counts
them (`trial_resources`, `check_fits`, `max_concurrent`), the trainable that runs in a worker
(`run_trial`) and the device it trains on (`worker_config`), the OptunaSearch subclass that
keeps the record in the study (`make_searcher`), and ASHA that spares the baselines and
remembers whom it stopped (`make_scheduler`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.policy import Policy, load_policy
from autosoft.search.trials import finite
from autosoft.train import train


def epochs_done(result: dict | None, default: int) -> int:
    """Epochs a trial's report says it has trained (its "epoch" is 0-based), else `default`."""
    return int(result["epoch"]) + 1 if result and "epoch" in result else default


def trial_resources(cpus_per_trial, gpus_per_trial, proxy: dict) -> tuple[float, float]:
    """(CPUs, GPUs) per trial: 1 CPU, and a quarter GPU when the proxy trains on a visible GPU."""
    on_gpu = proxy.get("device", "auto") != "cpu" and _has_gpu()
    cpus = cpus_per_trial if cpus_per_trial is not None else 1
    gpus = gpus_per_trial if gpus_per_trial is not None else (0.25 if on_gpu else 0)
    if cpus <= 0 or gpus < 0:
        raise AutosoftError(f"resources per trial: expected cpus > 0 and gpus >= 0, got cpus={cpus}, gpus={gpus}")
    return cpus, gpus


def _has_gpu() -> bool:
    return torch.cuda.is_available()


def check_fits(cpus: float, gpus: float, address: str | None) -> None:
    """Before a search writes anything: a trial that needs more than the Ray it will run on has
    (a GPU share with no GPU) fails now. The Ray already up in this process, else the local one
    `init_ray` would start (all CPUs, the visible GPUs); a cluster to join is checked once joined."""
    import ray
    if ray.is_initialized():
        trials_that_fit(ray.cluster_resources(), cpus, gpus)
    elif not address or address == "local":
        trials_that_fit({"CPU": os.cpu_count() or 1, "GPU": torch.cuda.device_count()}, cpus, gpus,
              where="this machine (where a local Ray would start)")


def max_concurrent(cpus: float, gpus: float) -> int:
    """How many trials the running Ray cluster fits at once."""
    import ray
    return trials_that_fit(ray.cluster_resources(), cpus, gpus)


# ray 2.60.0 counts resources in fixed point, in units of 1/10,000 (`ray._raylet.RESOURCE_UNIT_SCALING`):
# float division undercounts (1 // 0.2 == 4.0, 1 // 0.1 == 9.0) where Ray fits 5 and 10.
RESOURCE_UNITS = 10_000


def _units(quantity: float) -> int:
    return int(round(quantity * RESOURCE_UNITS))


def _how_many(total: float, share: float) -> int:
    """How many shares of `share` fit in `total`, counted as Ray counts them."""
    return _units(total) // _units(share)


def trials_that_fit(total: dict, cpus: float, gpus: float, where: str = "the Ray cluster") -> int:
    """How many trials of `cpus` and `gpus` each fit at once in `total` (Ray's resource dict,
    e.g. {"CPU": 16, "GPU": 1}), counted as Ray counts them; none: an error naming `where`."""
    for name, share in (("cpus", cpus), ("gpus", gpus)):
        if share and _units(share) == 0:
            raise AutosoftError(f"resources per trial: {name}={share} is finer than Ray's resolution of "
                                f"{1 / RESOURCE_UNITS:g}")
    n = _how_many(total.get("CPU", 1), cpus)
    if gpus:
        n = min(n, _how_many(total.get("GPU", 0), gpus))
    if n < 1:
        raise AutosoftError(f"a trial needs {cpus} CPU and {gpus} GPU but {where} has "
                            f"{total.get('CPU', 0)} CPU and {total.get('GPU', 0)} GPU")
    return n


# ---- the trial: runs in a Ray worker ------------------------------------------------------
def run_trial(config: dict, *, proxy: dict, data) -> None:
    """One trial: train the proxy with the suggested policy, report every epoch to Tune.

    Each report also carries the Ray node the trial runs on (`node_id`; Tune adds `node_ip`)
    and the train loss of every epoch so far (`train_loss_per_epoch`), for the study's record.
    """
    import ray
    from ray import tune

    node_id = ray.get_runtime_context().get_node_id()
    losses: list[float] = []

    def report(epoch: int, metrics: dict) -> None:
        losses.append(metrics.get("train_loss"))  # every epoch's, validated or not
        if "val_acc" not in metrics:
            return  # an epoch without a validation pass (val_every): Tune requires the metric in every result
        # ray 2.60.0's function API: tune.report(dict), numbers only (older Ray: session.report, **kwargs)
        tune.report({**{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                     "node_id": node_id, "train_loss_per_epoch": list(losses)})

    policy = Policy.from_dict(config["policy"], source=f"trial {config['trial_number']}")
    train(TrainConfig.from_dict(worker_config(proxy)), policy, report=report, quiet=True, data=data)


def trial_device(device: str, gpu_ids, cuda_available: bool) -> str:
    """The device a Ray worker trains on: "auto" means the GPU only when Ray assigned the worker one.

    ray 2.60.0 no longer hides the GPUs from a task or actor that was assigned none (it leaves
    CUDA_VISIBLE_DEVICES alone; ray-project/ray#54868), so "auto" alone would put a trial run
    with `--gpus-per-trial 0` on the GPU, outside Ray's accounting, beside every other trial.
    Where no GPU is visible the device is left as it is ("auto" is the CPU there), so run
    folders written on CPU machines keep their config and resume.
    """
    if device == "auto" and cuda_available and not list(gpu_ids):
        return "cpu"
    return device


def worker_config(config: dict) -> dict:
    """A train config as a Ray worker should run it (see `trial_device`); call it inside the worker."""
    import ray
    device = trial_device(config.get("device", "auto"), ray.get_gpu_ids(), torch.cuda.is_available())
    return config if device == config.get("device", "auto") else {**config, "device": device}


# ---- Optuna inside Ray Tune ---------------------------------------------------------------
def make_searcher(space, *, metrics, modes, sampler, study_name, storage, epochs, stopped: set):
    """OptunaSearch that keeps the whole record in the study (see `autosoft.search.record`).

    ray 2.60.0's OptunaSearch keeps its study in `_ot_study`, the live Optuna trial of each
    Tune trial in `_ot_trials` and the ids it has told in `_completed_trials`; there is no
    public way to set attributes on a trial or to tell it PRUNED/FAIL, so this subclass uses them.
    """
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

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
            # per trial, what `_record` has written: the last epoch reported, the node, the train losses
            self.steps: dict[str, int] = {}
            self.nodes: dict[str, str] = {}
            self.losses: dict[str, list] = {}
            self.failed: set[int] = set()

        @property
        def study(self):
            return self._ot_study

        def suggest(self, trial_id: str):
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr("policy", config["policy"])
            try:  # the same policy as a person reads it (`autosoft show`), for optuna-dashboard
                ot_trial.set_user_attr("policy_text", repr(Policy.from_dict(config["policy"], source="trial")))
            except AutosoftError:
                pass  # an invalid policy fails in its trial, with the error recorded there
            ot_trial.set_user_attr("tune_trial_id", trial_id)
            return {"policy": config["policy"], "trial_number": ot_trial.number,
                    "fixed_policy": ot_trial.user_attrs.get("fixed_policy")}

        def on_trial_result(self, trial_id: str, result: dict):
            # Replaces OptunaSearch.on_trial_result (no super() call), which reports the score at
            # Tune's report count (`training_iteration`); see `_record`.
            self.last_result[trial_id] = result
            if trial_id not in self._completed_trials:
                self._record(trial_id, result)

        def _record(self, trial_id: str, result: dict) -> None:
            """A report into the study: the score as an intermediate value at its epoch (1-based),
            so that optuna-dashboard's curves line up with epochs even for a trial validated after
            its last epoch only (Optuna keeps none for two objectives); the node; the train losses.

            ray 2.60.0 passes a result the scheduler stops on (ASHA at its last rung or max_t) to
            on_trial_complete only, not to on_trial_result: both call this, once per epoch.
            """
            ot_trial = self._ot_trials[trial_id]
            step = epochs_done(result, int(result.get("training_iteration", 1)))
            if len(metrics) == 1 and finite(result.get(metrics[0])) and self.steps.get(trial_id, 0) < step:
                self.steps[trial_id] = step
                ot_trial.report(result[metrics[0]], step)
            node = result.get("node_id")
            if node and self.nodes.get(trial_id) != node:
                self.nodes[trial_id] = node
                ot_trial.set_user_attr("node", node)  # the Ray node it runs on, and that node's IP
                ot_trial.set_user_attr("node_ip", result.get("node_ip"))
            losses = result.get("train_loss_per_epoch")
            if losses and self.losses.get(trial_id) != losses:
                self.losses[trial_id] = losses
                ot_trial.set_user_attr("train_loss", [v if finite(v) else None for v in losses])

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            # Replaces OptunaSearch.on_trial_complete (no super() call): ray 2.60.0 tells every trial
            # without a result PRUNED and every other one COMPLETE, even one the time limit cut short.
            # Its `_completed_trials` bookkeeping is kept: a trial told already (record_error) is skipped.
            if trial_id in self._completed_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            # A trial stopped by ASHA or cut short arrives without a result: use its last report.
            result = result or self.last_result.get(trial_id)
            # Epochs, not reports: a trial validated after its last epoch only reports once.
            epochs_run = epochs_done(result, 0)
            if result:
                self._record(trial_id, result)
                ot_trial.set_user_attr("metrics", {k: v for k, v in result.items()
                                                   if k.startswith(("val_", "train_")) and finite(v)})
                ot_trial.set_user_attr("wall_time_s", result.get("time_total_s"))
            ot_trial.set_user_attr("epochs", epochs_run)
            self._completed_trials.add(trial_id)
            if error:
                return  # told FAIL by record_error, once the callback has the exception
            values = [result.get(m) for m in metrics] if result else [None]
            if epochs_run >= epochs and all(finite(v) for v in values):
                self._ot_study.tell(ot_trial, values)
            elif epochs_run >= epochs:
                self.record_error(trial_id, f"non-finite validation score {values}")
            elif trial_id in stopped:  # ASHA stopped it: a pruned trial, with its scores so far
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            # else: cut short by Ctrl-C or the time limit; it stays RUNNING and is enqueued again

        def record_error(self, trial_id: str, message: str) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or ot_trial.number in self.failed:
                return
            self.failed.add(ot_trial.number)
            self._completed_trials.add(trial_id)
            ot_trial.set_user_attr("error", message)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)

        def save(self, checkpoint_path: str):
            # The study is the searcher's state; Tune's experiment snapshot only notes where it is.
            Path(checkpoint_path).write_text(json.dumps({"optuna_study": study_name}))

        def restore(self, checkpoint_path: str):
            raise AutosoftError("resume a search with `autosoft search --resume` (the Optuna study holds its state)")

    return StudySearcher()


def make_scheduler(epochs: int, stopped: set, grace_fraction: float, *, metric: str = "val_acc", mode: str = "max"):
    """ASHA on the (first) objective per epoch, first rung at `grace_fraction` of the schedule; remembers
    which trials it stopped before their last epoch.

    ray 2.60.0 tells a searcher that ASHA stopped a trial exactly as it tells it of a trial cut
    short by the time limit (on_trial_complete, no result): the `stopped` set tells them apart.
    """
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class Scheduler(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and trial.config.get("fixed_policy"):
                # Known baselines always run to the end: the search result is compared with
                # their full-schedule score, and strong augmentation looks weak early on.
                return TrialScheduler.CONTINUE
            if action == TrialScheduler.STOP and epochs_done(result, epochs) < epochs:
                stopped.add(trial.trial_id)
            return action

    # Strong augmentation trails weak augmentation in the first epochs: an early rung mostly
    # stops policies that would have caught up (see autosoft.search.proxy.ASHA_GRACE).
    return Scheduler(metric=metric, mode=mode, max_t=epochs,
                     grace_period=max(1, round(epochs * grace_fraction)), reduction_factor=3)
