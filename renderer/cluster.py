"""Starting (or joining) the Ray cluster, once per process.

A new local cluster is bound to this machine only: every Ray server listens on
``127.0.0.1``. (Ray 2.60 turns an explicit ``127.0.0.1`` node address into the
machine's routable one and then listens on every interface; its single-machine
mode, which Ray uses on macOS and Windows and which
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects, keeps it on loopback.) The
dashboard is off and Ray's token authentication on: Ray 2.60 turns it on for a
new local cluster unless ``RAY_AUTH_MODE`` says otherwise, and generates the
token into ``~/.ray/auth_token`` on first use. :func:`ensure_ray` refuses to
start a local cluster with authentication disabled.

Joining a cluster that already runs (every command's ``--ray_address``, or
``$RAY_ADDRESS``)::

    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<the same secret on every node>
    ray start --head --port 6379 --include-dashboard false       # on the head node
    ray start --address HEAD:6379                                 # on each other node
    python -m rl.ppo --ray_address HEAD:6379 ...                  # anywhere in the cluster

Ray 2.60 sends a token to an address named explicitly only when ``RAY_AUTH_MODE=token`` is
set in the joining process; without it the join fails. Every node needs this repository,
its virtual environment and OpenSCAD at the same paths (render actors import
:mod:`renderer` and run OpenSCAD where they land), and run and corpus folders must be on a
disk every node sees. A loopback address (``127.0.0.1:PORT``, a cluster on this machine
only) keeps the joining process on loopback too; ``tests/renderer/test_two_node_cluster.py``
starts such a cluster with two nodes.
"""

from __future__ import annotations

import logging
import os
import time

from configs.cli import UsageError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Hosts of an address that means "a cluster on this machine's loopback"."""

_started_seconds: float | None = None


def is_loopback(address: str) -> bool:
    """Whether a Ray address (``HOST:PORT``, ``[::1]:PORT``, ``ray://HOST:PORT``) names loopback."""
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in LOOPBACK_HOSTS


def ensure_ray(num_cpus: int | None = None, address: str | None = None) -> float:
    """Start or join Ray unless this process already did; return the start-up seconds.

    ``num_cpus`` sizes a new local cluster (default: every core). ``address``
    (or ``$RAY_ADDRESS``) joins an existing one instead; a join that fails is a
    :class:`configs.cli.UsageError` naming the address and what to check.
    """
    global _started_seconds
    source = "--ray_address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    on_loopback = not address or is_loopback(address)
    if on_loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # for Ray's child processes
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return _started_seconds or 0.0
    start = time.perf_counter()
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if on_loopback:
        ray_constants.ENABLE_RAY_CLUSTER = False  # read when Ray picks the node address: loopback
    if address:
        from ray.exceptions import AuthenticationError

        try:
            ray.init(address=address, **options)
        except (ConnectionError, AuthenticationError) as error:
            raise UsageError(
                f"{source} {address}: cannot join the Ray cluster ({error}); is it running, and does this "
                "process have RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN)?"
            ) from None
    else:
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
            raise RuntimeError("refusing to start a local Ray cluster with RAY_AUTH_MODE other than token")
        # Ray's notice that token auth is on names RAY_AUTH_MODE=disabled as the way out, which we refuse
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(num_cpus=num_cpus or os.cpu_count(), **options)
    _started_seconds = time.perf_counter() - start
    return _started_seconds


def check_gpus(wanted: int) -> None:
    """A :class:`configs.cli.UsageError` when the Ray cluster (started or joined) has fewer
    than ``wanted`` GPUs: Ray would otherwise wait for them forever."""
    import ray

    have = int(ray.cluster_resources().get("GPU", 0))
    if wanted > have:
        raise UsageError(f"--gpus {wanted}: the Ray cluster has {have} GPU(s); use --gpus {have} "
                         "or --ray_workers N for CPU learners")
