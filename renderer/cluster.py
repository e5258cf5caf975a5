"""Starting (or joining) the Ray cluster, once per process.

A new local cluster is bound to this machine only: every Ray server listens on
``127.0.0.1``. (Ray 2.60 turns an explicit ``127.0.0.1`` node address into the
machine's routable one and then listens on every interface; its single-machine
mode, which Ray uses on macOS and Windows and which
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects, keeps it on loopback.) The
dashboard is off and Ray's
token authentication on: Ray 2.60 turns it on for a new local cluster unless
``RAY_AUTH_MODE`` says otherwise, and generates the token into
``~/.ray/auth_token`` on first use. :func:`ensure_ray` refuses to start a
local cluster with authentication disabled.

To use an existing cluster instead, start it yourself (``ray start --head``
on the head node, ``ray start --address HEAD:6379`` on the others, all with the
same ``RAY_AUTH_TOKEN``) and pass its address (``--ray-address auto`` or
``HEAD:6379``) to scadloop's commands, or set ``RAY_ADDRESS``.
"""

from __future__ import annotations

import logging
import os
import time

_started_seconds: float | None = None


def ensure_ray(num_cpus: int | None = None, address: str | None = None) -> float:
    """Start or join Ray unless this process already did; return the start-up seconds.

    ``num_cpus`` sizes a new local cluster (default: every core). ``address``
    (or ``$RAY_ADDRESS``) joins an existing one instead.
    """
    global _started_seconds
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # for Ray's child processes
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return _started_seconds or 0.0
    start = time.perf_counter()
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **options)
    else:
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
            raise RuntimeError("refusing to start a local Ray cluster with RAY_AUTH_MODE other than token")
        ray_constants.ENABLE_RAY_CLUSTER = False  # read when Ray picks the node address: loopback
        ray.init(num_cpus=num_cpus or os.cpu_count(), **options)
    _started_seconds = time.perf_counter() - start
    return _started_seconds
