"""Ray Tune and Optuna, adapted: every reach into their private parts and every workaround.

Written for ray 2.60.0 and optuna 5.0.0, checked on 5.1.0 (pyproject pins ray[tune]~=2.60.0). Ray's
API has changed under users several times; each workaround says what it relies on,
so an upgrade knows where to look. Ray is imported inside the functions: importing
this module (as `autosoft.search.record` does) neither imports nor starts Ray.

What is here: starting Ray (`init_ray`), trial resources (counted as Ray counts them) and the
device a worker trains on (`worker_config`), the trainable that runs in
a worker (`run_trial`), the OptunaSearch subclass that keeps the record in the study
(`make_searcher`), ASHA that spares the baselines and remembers whom it stopped
(`make_scheduler`), the one-line live view, quiet console output (`quiet_tune`), and on
the Optuna side: attributes of another process's trial, TPE's "experimental" warnings, an
NSGA-II sampler that Tune can pickle (`picklable_nsga2_sampler`).
"""

from __future__ import annotations

import functools
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
def epochs_done(result: dict | None, default: int) -> int:
    """Epochs a trial's report says it has trained (its "epoch" is 0-based), else `default`."""
    return int(result["epoch"]) + 1 if result and "epoch" in result else default


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
    import threading
    cls = _nsga2_class()
    sampler = cls.__new__(cls)
    vars(sampler).update(state, _thread_lock=threading.Lock())
    return sampler


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
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own variable names a cluster to join
    if address and address != "local":
        check_ray_address(address)  # also turns token authentication on when this machine has a token
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise AutosoftError(_join_error(address, e)) from None
    else:
        # address="local": a Ray of its own. With no address, ray 2.60.0 joins any Ray instance
        # running on the machine (another search's, a `ray start` cluster) and its CPU count.
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    return True


RAY_CONNECT_TIMEOUT_S = 3.0


def check_ray_address(address: str | None, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail within seconds, in one line, when --ray-address points at nothing.

    ray 2.60.0's `ray.init(address="host:port")` with no GCS there retries for minutes, printing
    C++ warnings every 5 s; it has no connect timeout to set. So first: a TCP connect to the GCS
    (host:port), to the Ray Client server (ray://host:port), or, for "auto", to the cluster that
    `ray._private.services.canonicalize_bootstrap_address` finds (a private function: the one
    that reads RAY_ADDRESS, /tmp/ray/ray_current_cluster and the running GCS processes, as
    `ray.init("auto")` itself does). Then, for a GCS address, one request to it, which a
    cluster with token authentication answers at once when this machine's token is missing or
    wrong (see `use_ray_token`): one line that says which, not Ray's 20 s of retries and
    "Failed to connect to Ray cluster". A port that answers but is no Ray GCS fails after
    `RAY_PROBE_TIMEOUT_S`.
    """
    import socket
    if not address or address == "local":
        return
    use_ray_token()
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
    if not address.startswith("ray://"):  # Ray Client servers authenticate on their own terms
        _probe_gcs(address, target)


# ---- joining a cluster: ray 2.60.0's token authentication --------------------------------------
# ray 2.60.0 (from its source, ray/_private/authentication/ and ray/_private/worker.py):
#  - the mode is the environment variable RAY_AUTH_MODE ("token" or "disabled"), read by every
#    Ray process; the token is, first found: RAY_AUTH_TOKEN (the value), the file RAY_AUTH_TOKEN_PATH
#    names (unreadable or empty: Ray aborts), ~/.ray/auth_token (the first local `ray.init()` on a
#    machine generates it);
#  - a local `ray.init()` turns token mode on by default; `ray start --head` turns it on when a
#    token is found; a cluster in token mode refuses every client and node without its token;
#  - `ray.init(address="auto")` turns token mode on when a token is found, but an explicit
#    address ("host:port") never does: so `--ray-address 127.0.0.1:6399` was refused ("Failed to
#    connect to Ray cluster at <node ip>:6399", after 20 s of retries) where `auto` joined;
#  - `ray start --address=...` (a worker node) never turns it on either: a second node needs
#    RAY_AUTH_MODE=token in its environment, and the cluster's token (README: "Running on a cluster").
# A client in token mode joins a cluster without authentication as well (tried on 2.60.0).
RAY_TOKEN_FILE = Path("~/.ray/auth_token")
RAY_PROBE_TIMEOUT_S = 10.0


def ray_token_source() -> str | None:
    """Where this process's Ray token comes from, in words (None: it has none), as Ray looks for it."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            if Path(path).expanduser().read_text().strip():
                return f"RAY_AUTH_TOKEN_PATH ({path})"
        except OSError:
            pass
        # Ray itself aborts the process on this (a C++ check), with no way to catch it.
        raise AutosoftError(f"RAY_AUTH_TOKEN_PATH={path}: no Ray token can be read there; point it at the file "
                            "holding the cluster's token (`ray get-auth-token` on the head node prints it), "
                            "or unset it")
    default = RAY_TOKEN_FILE.expanduser()
    try:
        return str(default) if default.read_text().strip() else None
    except OSError:
        return None


def use_ray_token() -> str | None:
    """Before joining a cluster at any address: token mode on when this machine has a token and
    RAY_AUTH_MODE is unset (as ray 2.60.0 does for "auto" only); returns the token's source.

    Uses ray 2.60.0's private `_enable_token_auth` (sets RAY_AUTH_MODE=token in this process,
    inherited by what it starts, and reloads Ray's cached config so the mode applies now).
    """
    source = ray_token_source()
    mode = os.environ.get("RAY_AUTH_MODE")
    if source is None and mode is not None and mode.lower() == "token":
        # ray 2.60.0 aborts the process (a failed C++ check) on its first request without a token.
        raise AutosoftError("Ray token authentication is on here (RAY_AUTH_MODE=token) but this machine has no "
                            "token; `ray get-auth-token` on the head node prints the cluster's token: put it in "
                            "~/.ray/auth_token, or in RAY_AUTH_TOKEN")
    import ray
    if source and mode is None and not ray.is_initialized():  # a process already in a cluster keeps its mode
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        _enable_token_auth()
    return source


def _token_problem(address: str) -> str:
    """Why a cluster refused this process's credentials, and what to do, in one line."""
    where = f"cannot join the Ray cluster at {address!r}"
    how = ("`ray get-auth-token` on the head node prints its token: put it in ~/.ray/auth_token on this machine, "
           "or in RAY_AUTH_TOKEN")
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        return f"{where}: it requires Ray token authentication, but RAY_AUTH_MODE={mode} here; unset it or set it to token"
    source = ray_token_source()
    if source is None:
        return f"{where}: it requires Ray token authentication and this machine has no token; {how}"
    return f"{where}: it refused the Ray token from {source} (not the cluster's token); {how}"


def _probe_gcs(address: str, target: str, timeout_s: float = RAY_PROBE_TIMEOUT_S) -> None:
    """One request to the GCS at `target` with this process's credentials, bounded by `timeout_s`.

    ray 2.60.0: `ray._raylet.GcsClient(address=...)` asks the GCS for the cluster id once (about
    10 ms, AuthenticationError at once on a missing or wrong token) but waits 40 s on a port that
    is no GCS, so it runs in a thread; its C++ warnings on stderr are silenced meanwhile.
    """
    import threading

    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    outcome: list = []

    def probe():
        try:
            GcsClient(address=target)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - sorted out below
            outcome.append(e)

    thread = threading.Thread(target=probe, daemon=True, name="autosoft-gcs-probe")
    with _stderr_silenced():
        thread.start()
        thread.join(timeout_s)
    if not outcome:
        raise AutosoftError(f"cannot join the Ray cluster at {address!r}: something answers at {target} but no Ray "
                            f"GCS replied within {timeout_s:.0f} s; give the head node's address "
                            "(the host:port `ray start --head` printed)")
    error = outcome[0]
    if isinstance(error, AuthenticationError):
        raise AutosoftError(_token_problem(address))
    # Anything else (an old cluster, a transient error) is left to ray.init, which says more.


def _join_error(address: str, error: Exception) -> str:
    """ray.init's failure to join as one line: a refused token named as such."""
    from ray.exceptions import AuthenticationError
    cause = error
    while cause is not None:
        if isinstance(cause, AuthenticationError) or "InvalidAuthToken" in str(cause):
            return _token_problem(address)
        cause = cause.__cause__ or cause.__context__
    return f"cannot join the Ray cluster at {address!r}: {str(error).splitlines()[0]}"


@contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for a while: Ray's C++ code writes its warnings there directly."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
    """One trial: train the proxy with the suggested policy, report every epoch to Tune.

    Each report also carries the Ray node the trial runs on (`node_id`; Tune adds `node_ip`)
    and the train loss of every epoch so far (`train_loss_per_epoch`), for the study's record.
    """
    import ray
    from ray import tune
    from autosoft.policy import Policy
    from autosoft.train import TrainConfig, train

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

    from autosoft.policy import Policy, load_policy
    from autosoft.search.trials import finite

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
            if action == TrialScheduler.STOP and epochs_done(result, epochs) < epochs:
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

    from autosoft.search.trials import best_trial, complete_trials, state_counts

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
