"""The local Ray cluster listens on loopback only and has token authentication on."""

import os
import subprocess

import pytest

from renderer.cluster import ensure_ray


def _listening_sockets_of(pids: set[int]) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]


def _ray_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "gcs_server|raylet"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.mark.skipif(subprocess.run(["which", "ss"], capture_output=True).returncode != 0, reason="no ss")
def test_local_cluster_binds_loopback_with_token_auth():
    import ray
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    ensure_ray(2)
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    addresses = _listening_sockets_of(_ray_pids())
    assert addresses, "found no listening sockets of gcs_server/raylet"
    assert all("127.0.0.1" in a for a in addresses), addresses
    assert is_token_auth_enabled()
    assert os.path.exists(os.path.expanduser("~/.ray/auth_token")) or os.environ.get("RAY_AUTH_TOKEN")
