"""Joining a real Ray cluster: two nodes on this machine (`ray start --head`, then `ray start
--address`), with ray 2.60.0's token authentication, and a tiny `autosoft search` against it.

The cluster gets its own --temp-dir, port and token (RAY_AUTH_TOKEN, never ~/.ray/auth_token),
and every process it starts carries a marker in its environment: cleanup kills those and only
those (never `ray stop`, which stops every Ray on the machine), even when the test fails.
"""

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autosoft.errors import AutosoftError

pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
MARKER = "AUTOSOFT_TEST_CLUSTER"
PROXY = {"preset": "cpu", "model": "proxy", "model_kwargs": {"width": 8}, "epochs": 2, "batch_size": 100,
         "train_size": 400, "val_size": 200, "lr": 0.1, "warmup_epochs": 0.5, "weak_aug_epochs": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked_pids(marker: str) -> list[int]:
    """The processes whose environment holds `marker` (what the cluster's `ray start` started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def _kill_marked(marker: str, timeout_s: float = 20.0) -> list[int]:
    """SIGKILL every marked process until none is left; returns those still alive (should be none)."""
    deadline = time.time() + timeout_s
    while True:
        pids = _marked_pids(marker)
        if not pids or time.time() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


def _ray_env(**extra) -> dict:
    """This environment without any Ray address or authentication setting of its own, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@pytest.fixture
def two_nodes():
    """A head node and a second node, 1 CPU each, token authentication on; yields (address, env)."""
    if RAY is None:
        why = "the `ray` command is not installed (pip install 'ray[tune]')"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    temp = tempfile.mkdtemp(prefix="autosoft-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    marker = f"{MARKER}={temp}"
    port = _free_port()
    token = secrets.token_hex(32)
    node_env = _ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, **{MARKER: temp})
    common = ["--num-cpus", "1", "--num-gpus", "0", "--temp-dir", temp, "--object-store-memory", "100000000",
              "--disable-usage-stats"]
    try:
        for args in (["--head", "--port", str(port), "--include-dashboard", "false"],
                     ["--address", f"127.0.0.1:{port}"]):
            started = subprocess.run([RAY, "start", *args, *common], env=node_env, capture_output=True, text=True,
                                     timeout=120)
            assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        # The client gets the token only: autosoft turns token authentication on by itself.
        yield f"127.0.0.1:{port}", _ray_env(RAY_AUTH_TOKEN=token)
    finally:
        left = _kill_marked(marker)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes of the test cluster still alive: {left}"


def _cli(args, env, timeout=240):
    code = "import sys; from autosoft.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.cluster
def test_a_search_on_two_nodes_runs_trials_on_both(two_nodes, small_cifar10, tmp_path):
    address, env = two_nodes
    (tmp_path / "proxy.json").write_text(json.dumps(PROXY))
    out = tmp_path / "search"
    args = ["search", "--dataset", "cifar10", "--budget", "4", "--space", "randaugment", "--no-baselines",
            "--confirm", "0", "--config", str(tmp_path / "proxy.json"), "--cpus-per-trial", "1",
            "--data-dir", str(small_cifar10), "--out", str(out), "--ray-address", address]

    # No token on this machine (an empty home, no RAY_AUTH_TOKEN), then a wrong one: one line each, in seconds.
    (tmp_path / "home").mkdir()
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": str(tmp_path / "home")}
    for bad_env, message in ((no_token, "it requires Ray token authentication and this machine has no token"),
                             ({**env, "RAY_AUTH_TOKEN": "not-the-token"},
                              "it refused the Ray token from RAY_AUTH_TOKEN (not the cluster's token)")):
        start = time.time()
        failed = _cli(args, bad_env, timeout=60)
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr[-3000:]
        assert f"cannot join the Ray cluster at '{address}': {message}" in failed.stderr
        assert "ray get-auth-token" in failed.stderr and time.time() - start < 30
        assert not out.exists()

    # The cluster's token (RAY_AUTH_TOKEN, no RAY_AUTH_MODE) and an explicit 127.0.0.1 address.
    done = _cli(args, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    settings = json.loads((out / "search.json").read_text())
    study = optuna.load_study(study_name=settings["study_name"], storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    nodes = [t.user_attrs["node"] for t in trials]
    assert len(set(nodes)) == 2, nodes  # each node ran trials
    assert all(t.user_attrs["node_ip"] for t in trials)
    with open(out / "trials.csv") as f:
        assert [r["node"] for r in csv.DictReader(f)] == nodes


def test_token_settings_that_cannot_work_fail_in_one_line(monkeypatch, tmp_path):
    """Where ray 2.60.0 would abort the process (a failed C++ check), autosoft says what is wrong."""
    from autosoft.search import ray_cluster
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(AutosoftError, match=r"^RAY_AUTH_TOKEN_PATH=.*/missing: no Ray token can be read there"):
        ray_cluster.use_ray_token()
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    with pytest.raises(AutosoftError, match=r"\(RAY_AUTH_MODE=token\) but this machine has no token"):
        ray_cluster.use_ray_token()
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0123abcd\n")
    assert ray_cluster.use_ray_token() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0123abcd")  # the variable comes first, as in Ray
    assert ray_cluster.use_ray_token() == "RAY_AUTH_TOKEN"


@pytest.mark.skipif(RAY is None, reason="needs the ray command line")
def test_a_search_starts_its_own_ray_beside_a_running_cluster(monkeypatch):
    # ray 2.60.0's ray.init() with no address joins the `ray start` cluster of the machine and
    # refuses num_cpus there ("When connecting to an existing cluster, num_cpus ... must not be
    # provided"): a search next to a cluster failed. RAY_TMPDIR keeps this cluster to the test.
    import ray

    from autosoft.search.ray_cluster import init_ray

    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    marker = f"{MARKER}=beside-{os.getpid()}"
    monkeypatch.setenv("RAY_TMPDIR", tmp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    try:
        subprocess.run([RAY, "start", "--head", "--num-cpus", "1", "--port", str(_free_port()),
                        "--include-dashboard=false"], check=True, capture_output=True, timeout=120,
                       env=_ray_env(RAY_TMPDIR=tmp, **dict([marker.split("=", 1)])))
        assert init_ray(num_cpus=2)
        try:
            assert ray.cluster_resources()["CPU"] == 2  # its own Ray, not the 1-CPU cluster
        finally:
            ray.shutdown()
    finally:
        assert _kill_marked(marker) == []
        shutil.rmtree(tmp, ignore_errors=True)
