"""Starting Ray, or joining a Ray cluster: the address, ray 2.60.0's token authentication, one-line errors.

Written for ray 2.60.0 (pyproject pins ray[tune]~=2.60.0); Ray's API has changed under users
several times, so each workaround says what it relies on, and an upgrade knows where to look.
Ray is imported inside the functions: importing this module neither imports nor starts Ray.
Here: `init_ray` (a quiet local Ray, or a cluster joined), `check_ray_address` (a cluster that
is not there, or refuses this machine's token, fails in seconds and in one line), where this
process's Ray token comes from (`ray_token_source`, `use_ray_token`), and Ray's version for
provenance (`ray_version`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from autosoft.errors import AutosoftError


def ray_version() -> str:
    """Ray's version for provenance, read from the installed package metadata: no `import ray`."""
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return "not installed"


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
