"""Joining a Ray cluster that already runs: two nodes on this machine's loopback, token auth on.

The fixture starts what a user starts: a head with ``ray start --head`` (token authentication,
dashboard off, one CPU) and a second node that joins it (one CPU), each ``--block``-ing in a
session of its own, so that teardown ends exactly these processes (``ray stop`` would end every
Ray process of the machine). The token is a fresh secret in ``RAY_AUTH_TOKEN``; nothing is read
from or written to ``~/.ray``. Then ``corpus.build`` and one PPO iteration join it with
``--ray_address``; each runs two render actors, which with one CPU per node can only run one on
each node, and the cluster's actor table shows them there.

Both nodes stay on loopback. Ray 2.60 keeps a node on ``127.0.0.1`` only in its single-machine
mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the head here), where ``ray start --address``
refuses to add a node; outside it, it replaces ``127.0.0.1`` by the routable address and listens
on every interface. So the second node runs Ray's own ``ray start`` with that replacement
switched off (:data:`SECOND_NODE`).
"""

from __future__ import annotations

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

import pytest

from tests.conftest import needs_openscad
from tests.rl.conftest import FAST_FAMILIES, ROOT, build_tiny_policy

pytestmark = needs_openscad

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
SECOND_NODE = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host  # keep 127.0.0.1: see the test's docstring
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""
RENDER_ACTORS = """
import json, sys
from renderer.cluster import ensure_ray
ensure_ray(address=sys.argv[1])
import ray
from ray._private.state import actors
nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
jobs = {}
for actor in actors().values():
    if actor["ActorClassName"] == "RenderWorker":
        jobs.setdefault(actor["JobID"], set()).add(actor["Address"]["NodeID"])
print(json.dumps({"nodes": nodes, "jobs": {job: sorted(ids) for job, ids in jobs.items()}}))
"""
"""Prints the alive nodes and, per job, the nodes its ``RenderWorker`` actors ran on."""


class Cluster:
    """A two-node Ray cluster of this test: its address, environment and processes."""

    def __init__(self):
        self.temp_dir = tempfile.mkdtemp(prefix="scadloop-ray-", dir="/tmp")  # short: socket paths
        self.address = f"127.0.0.1:{_free_port()}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("RAY_") or k == "RAY_NUM_REDIS_GET_RETRIES"}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.nodes: list[subprocess.Popen] = []

    def start(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0",
                  "--object-store-memory", str(100 * 2**20)]
        head = [RAY, "start", "--head", "--port", port, "--include-dashboard", "false", "--temp-dir",
                self.temp_dir, "--disable-usage-stats", *common]
        self._start("head", head, {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        node = [sys.executable, "-c", SECOND_NODE, "start", "--address", self.address, *common]
        self._start("node", node, {})

    def _start(self, name: str, command: list[str], env: dict) -> None:
        log = open(os.path.join(self.temp_dir, f"{name}.log"), "w+")
        self.nodes.append(subprocess.Popen(command, env={**self.env, **env}, cwd=self.temp_dir, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in _read(log.name):
            if self.nodes[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start ({name}) failed:\n{_read(log.name)[-3000:]}")
            time.sleep(0.2)

    def run(self, module: str, *args: str, env: dict | None = None, timeout: float = 300):
        """``python -m module args`` from the repository root, joining the cluster with ``--ray_address``."""
        return subprocess.run([sys.executable, "-m", module, *args, "--ray_address", self.address],
                              cwd=ROOT, env=env or self.env, capture_output=True, text=True, timeout=timeout)

    def render_actors(self) -> dict:
        """``{"nodes": [alive node ids], "jobs": {job id: [node ids of its RenderWorker actors]}}``."""
        completed = subprocess.run([sys.executable, "-c", RENDER_ACTORS, self.address], cwd=ROOT,
                                   env=self.env, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return json.loads(completed.stdout.splitlines()[-1])

    def stop(self) -> None:
        """End this cluster's processes, and only them: everything in the two sessions."""
        for node in self.nodes:
            node.send_signal(signal.SIGTERM)  # ray start --block stops its node's processes
        deadline = time.monotonic() + 15
        while _session_members(self.nodes) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in _session_members(self.nodes):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for node in self.nodes:
            node.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read(path: str) -> str:
    with open(path, errors="replace") as fh:
        return fh.read()


def _session_members(nodes: list[subprocess.Popen]) -> list[int]:
    """Live (not zombie) processes in the sessions the ``ray start`` processes lead."""
    sessions = {str(node.pid) for node in nodes}
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    return [int(pid) for pid, sid, stat in (line.split() for line in out.splitlines())
            if sid in sessions and not stat.startswith("Z")]


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def built(cluster, tmp_path_factory):
    """``(completed corpus.build, corpus folder, render actors before, after)`` of a 6-part build."""
    out = str(tmp_path_factory.mktemp("two_node") / "corpus")
    before = cluster.render_actors()
    completed = cluster.run("corpus.build", "--n", "6", "--out", out, "--workers", "2", "--quiet", "true",
                            "--families", ",".join(FAST_FAMILIES), "--holdout_families", "panel")
    return completed, out, before, cluster.render_actors()


def _new_jobs(before: dict, after: dict) -> dict:
    return {job: nodes for job, nodes in after["jobs"].items() if job not in before["jobs"]}


@pytest.mark.skipif(shutil.which("ss") is None, reason="no ss")
def test_the_cluster_has_two_nodes_on_loopback(cluster):
    nodes = cluster.render_actors()["nodes"]
    assert len(nodes) == 2
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = {str(pid) for pid in _session_members(cluster.nodes)}
    listening = [line.split()[3] for line in out.splitlines()
                 if any(f"pid={pid}," in line for pid in ours)]
    assert listening and all("127.0.0.1" in address for address in listening), listening


def test_corpus_build_renders_on_both_nodes(built):
    completed, out, before, after = built
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert os.path.exists(os.path.join(out, "build.json"))
    (nodes,) = _new_jobs(before, after).values()  # one new job: the build's, with two actors
    assert sorted(nodes) == after["nodes"]


def test_one_ppo_iteration_renders_on_both_nodes(cluster, built, tmp_path):
    _, corpus_dir, _, before = built
    checkpoint = build_tiny_policy().save(str(tmp_path / "sft_final"))
    completed = cluster.run(
        "rl.ppo", "--checkpoint", checkpoint, "--corpus_dir", corpus_dir, "--runs_dir", str(tmp_path),
        "--name", "joined", "--workers", "2", "--iterations", "1", "--batch_size", "2", "--k", "2",
        "--minibatch_size", "4", "--max_new_tokens", "8", "--length_guard", "false", "--tensorboard", "false",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "reward/total/mean=" in completed.stdout
    after = cluster.render_actors()
    (nodes,) = _new_jobs(before, after).values()
    assert sorted(nodes) == after["nodes"]


def _parts(folder) -> str:
    folder.mkdir()
    (folder / "a.scad").write_text("cube(2);")
    (folder / "b.scad").write_text("sphere(2, $fn = 12);")
    return str(folder)


def test_corpus_import_renders_on_both_nodes(cluster, tmp_path):
    before = cluster.render_actors()
    completed = cluster.run("corpus.import", _parts(tmp_path / "parts"), "--out", str(tmp_path / "out"),
                            "--workers", "2")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "imported 2 of 2 files" in completed.stdout
    after = cluster.render_actors()
    (nodes,) = _new_jobs(before, after).values()
    assert sorted(nodes) == after["nodes"]


def test_joining_without_token_mode_is_one_error_line_and_exit_2(cluster, tmp_path):
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}  # then Ray sends no token
    env["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # Ray retries for 20 s by default
    completed = cluster.run("corpus.import", _parts(tmp_path / "parts"), "--out", str(tmp_path / "out"),
                            "--workers", "1", env=env)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()  # Ray's own warnings come first
    errors = [line for line in lines if line.startswith("corpus.import: error:")]
    assert errors == lines[-1:]
    assert errors[0].startswith(f"corpus.import: error: --ray_address {cluster.address}: cannot join")
    assert "RAY_AUTH_MODE=token" in errors[0]
