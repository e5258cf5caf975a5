"""Starting (or joining) the Ray cluster, once per process.

A new local cluster is bound to this machine only (``127.0.0.1``; Ray 2.60
would otherwise listen on every interface), with the dashboard off and Ray's
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
    import ray

    if ray.is_initialized():
        return _started_seconds or 0.0
    start = time.perf_counter()
    address = address or os.environ.get("RAY_ADDRESS")
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **options)
    else:
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
            raise RuntimeError("refusing to start a local Ray cluster with RAY_AUTH_MODE other than token")
        ray.init(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1", **options)
    _started_seconds = time.perf_counter() - start
    return _started_seconds
