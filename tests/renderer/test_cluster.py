"""The local Ray cluster listens on loopback only and has token authentication on; every command
passes its --ray_address to its render pool (joining a real cluster: test_two_node_cluster.py)."""

import os
import subprocess

import pytest

from renderer.cluster import ensure_ray, is_loopback


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


@pytest.mark.parametrize(
    "address, loopback",
    [("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True),
     ("ray://127.0.0.1:10001", True), ("10.0.0.5:6379", False), ("head.example:6379", False),
     ("auto", False)],
)
def test_a_loopback_address_is_recognised(address, loopback):
    assert is_loopback(address) is loopback


class RecordingPool:
    """Stands in for RenderPool: records the keyword arguments every command's pool is built with."""

    built: list[dict] = []

    def __init__(self, scorer, **options):
        self.built.append(options)
        self.targets = {}

    def score(self, batch):
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_every_command_builds_its_render_pool_with_the_ray_address(monkeypatch):
    """corpus.build, corpus.import, rl.ppo and rl.sft's evaluation all pass --ray_address on."""
    import renderer.pool
    from configs.corpus import BuildConfig
    from configs.ppo import PPOConfig
    from configs.sft import SFTConfig
    from corpus.build import make_pool
    from corpus.build_cli import settings_of
    from corpus.importer import render_programs
    from rl.ppo_run import _pool_rewarder
    from rl.sft_callbacks import evaluator_for

    address = "10.0.0.5:6379"
    monkeypatch.setattr(renderer.pool, "RenderPool", RecordingPool)
    RecordingPool.built = []
    make_pool(settings_of(BuildConfig(n=4, out="unused", workers="2", ray_address=address)))
    render_programs([], 2, 128, 30.0, address)
    _pool_rewarder(PPOConfig(checkpoint="unused", workers=2, ray_address=address), None)
    config = SFTConfig(render_workers=2, ray_address=address)
    evaluator = evaluator_for(config, None, [{"id": "a"}], "unused")
    evaluator.rows = []  # no target meshes to load
    evaluator._ensure_pool()
    assert [options["ray_address"] for options in RecordingPool.built] == [address] * 4
