"""Ray/Optuna workarounds (autosoft.search.compat), checked against the real libraries."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest
import ray

from autosoft.search.compat import init_ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_processes_naming(text: str) -> None:
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    for line in ps.splitlines():
        pid, _, args = line.strip().partition(" ")
        if text in args and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.skipif(shutil.which("ray") is None, reason="needs the ray command line")
def test_a_search_starts_its_own_ray_beside_a_running_cluster(monkeypatch):
    # ray 2.60.0's ray.init() with no address joins the `ray start` cluster of the machine and
    # refuses num_cpus there ("When connecting to an existing cluster, num_cpus ... must not be
    # provided"): a search next to a cluster failed. RAY_TMPDIR keeps this cluster to the test.
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", tmp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    try:
        subprocess.run(["ray", "start", "--head", "--num-cpus", "1", "--port", str(_free_port()),
                        "--include-dashboard=false"], check=True, capture_output=True, timeout=120)
        assert init_ray(num_cpus=2)
        try:
            assert ray.cluster_resources()["CPU"] == 2  # its own Ray, not the 1-CPU cluster
        finally:
            ray.shutdown()
    finally:
        _kill_processes_naming(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
