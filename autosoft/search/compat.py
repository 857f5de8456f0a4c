"""Ray Tune and Optuna, adapted: every reach into their private parts and every workaround.

Written for ray 2.60.0 and optuna 5.0.0 (pyproject pins ray[tune]~=2.60.0). Ray's
API has changed under users several times; each workaround says what it relies on,
so an upgrade knows where to look. Ray is imported inside the functions: importing
this module (as `autosoft.search.record` does) neither imports nor starts Ray.

What is here: starting Ray (`init_ray`), trial resources (counted as Ray counts them) and the
device a worker trains on (`worker_config`), the trainable that runs in
a worker (`run_trial`), the OptunaSearch subclass that keeps the record in the study
(`make_searcher`), ASHA that spares the baselines and remembers whom it stopped
(`make_scheduler`), the one-line live view, quiet console output (`quiet_tune`), and on
the Optuna side: attributes of another process's trial, TPE's "experimental" warnings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from autosoft.errors import AutosoftError


# ---- Optuna ---------------------------------------------------------------------------
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


def ray_version() -> str:
    """Ray's version for provenance, read from the installed package metadata: no `import ray`."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ray")
    except PackageNotFoundError:
        return "not installed"


# ---- starting Ray, resources -------------------------------------------------------------
def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Start a quiet local Ray (all CPUs by default) or join a cluster; False if Ray was already up."""
    import ray
    if ray.is_initialized():
        return False
    # ray 2.60.0 warns on every start that token authentication is on (its default); say nothing of it.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # Workers import autosoft from this checkout when it is not installed into the environment.
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=False,
                  runtime_env={"env_vars": {"PYTHONPATH": path}})
    if address:
        check_ray_address(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError) as e:
            raise AutosoftError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    return True


RAY_CONNECT_TIMEOUT_S = 3.0


def check_ray_address(address: str | None, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail within seconds, in one line, when --ray-address points at nothing.

    ray 2.60.0's `ray.init(address="host:port")` with no GCS there retries for minutes, printing
    C++ warnings every 5 s; it has no connect timeout to set. So first: a TCP connect to the GCS
    (host:port), to the Ray Client server (ray://host:port), or, for "auto", to the cluster that
    `ray._private.services.canonicalize_bootstrap_address` finds (a private function: the one
    that reads RAY_ADDRESS, /tmp/ray/ray_current_cluster and the running GCS processes, as
    `ray.init("auto")` itself does). A port that answers but is no Ray cluster is not caught here.
    """
    import socket
    if not address or address == "local":
        return
    if address.startswith("ray://"):
        target = address[len("ray://"):]
    else:
        from ray._private import services
        try:
            target = services.canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as e:
            raise AutosoftError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
        if target is None:
            return
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise AutosoftError(f"--ray-address {address!r}: expected host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        why = "timed out" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        where = f"the cluster it found, {target}" if address == "auto" else address.removeprefix("ray://")
        raise AutosoftError(f"cannot join the Ray cluster at {address!r}: nothing answers at {where} "
                            f"({why}, waited at most {timeout_s:.0f} s); start it with 'ray start --head', "
                            "or drop --ray-address to run on this machine") from None


def trial_resources(cpus_per_trial, gpus_per_trial, proxy: dict) -> tuple[float, float]:
    """(CPUs, GPUs) per trial: 1 CPU, and a quarter GPU when the proxy trains on a visible GPU."""
    on_gpu = proxy.get("device", "auto") != "cpu" and _has_gpu()
    cpus = cpus_per_trial if cpus_per_trial is not None else 1
    gpus = gpus_per_trial if gpus_per_trial is not None else (0.25 if on_gpu else 0)
    if cpus <= 0 or gpus < 0:
        raise AutosoftError(f"resources per trial: expected cpus > 0 and gpus >= 0, got cpus={cpus}, gpus={gpus}")
    return cpus, gpus


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def check_fits(cpus: float, gpus: float, address: str | None) -> None:
    """Before a search writes anything: a trial that needs more than the Ray it will run on has
    (a GPU share with no GPU) fails now. The Ray already up in this process, else the local one
    `init_ray` would start (all CPUs, the visible GPUs); a cluster to join is checked once joined."""
    import ray
    if ray.is_initialized():
        _fits(ray.cluster_resources(), cpus, gpus)
    elif not address or address == "local":
        import torch
        _fits({"CPU": os.cpu_count() or 1, "GPU": torch.cuda.device_count()}, cpus, gpus,
              where="this machine (where a local Ray would start)")


def max_concurrent(cpus: float, gpus: float) -> int:
    """How many trials the running Ray cluster fits at once."""
    import ray
    return _fits(ray.cluster_resources(), cpus, gpus)


# ray 2.60.0 counts resources in fixed point, in units of 1/10,000 (`ray._raylet.RESOURCE_UNIT_SCALING`):
# float division undercounts (1 // 0.2 == 4.0, 1 // 0.1 == 9.0) where Ray fits 5 and 10.
RESOURCE_UNITS = 10_000


def _units(quantity: float) -> int:
    return int(round(quantity * RESOURCE_UNITS))


def _how_many(total: float, share: float) -> int:
    """How many shares of `share` fit in `total`, counted as Ray counts them."""
    return _units(total) // _units(share)


def _fits(total: dict, cpus: float, gpus: float, where: str = "the Ray cluster") -> int:
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
    """One trial: train the proxy with the suggested policy, report every epoch to Tune."""
    from ray import tune
    from autosoft.policy import Policy
    from autosoft.train import TrainConfig, train

    def report(epoch: int, metrics: dict) -> None:
        if "val_acc" not in metrics:
            return  # an epoch without a validation pass (val_every): Tune requires the metric in every result
        # ray 2.60.0's function API: tune.report(dict), numbers only (older Ray: session.report, **kwargs)
        tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))})

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
    import torch
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

    from autosoft.policy import load_policy
    from autosoft.search.record import finite

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
            self.failed: set[int] = set()

        @property
        def study(self):
            return self._ot_study

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
            # Replaces OptunaSearch.on_trial_complete (no super() call): ray 2.60.0 tells every trial
            # without a result PRUNED and every other one COMPLETE, even one the time limit cut short.
            # Its `_completed_trials` bookkeeping is kept: a trial told already (record_error) is skipped.
            if trial_id in self._completed_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            # A trial stopped by ASHA or cut short arrives without a result: use its last report.
            result = result or self.last_result.get(trial_id)
            # Epochs, not reports: a trial validated after its last epoch only reports once.
            epochs_run = int(result["epoch"]) + 1 if result and "epoch" in result else 0
            if result:
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


def make_scheduler(epochs: int, stopped: set, grace_fraction: float):
    """ASHA on val_acc per epoch, first rung at `grace_fraction` of the schedule; remembers
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
            if action == TrialScheduler.STOP and result.get("epoch", epochs) + 1 < epochs:
                stopped.add(trial.trial_id)
            return action

    # Strong augmentation trails weak augmentation in the first epochs: an early rung mostly
    # stops policies that would have caught up (see autosoft.search.proxy.ASHA_GRACE).
    return Scheduler(metric="val_acc", mode="max", max_t=epochs,
                     grace_period=max(1, round(epochs * grace_fraction)), reduction_factor=3)


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

    from autosoft.search.record import best_trial, complete_trials, state_counts

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
            c = state_counts(searcher.study)
            running = sum(t.status == "RUNNING" and t is not ended for t in trials)
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
            self._show(trials)

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
