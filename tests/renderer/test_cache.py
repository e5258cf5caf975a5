"""Properties of renderer.cache.RenderCache with the real OpenSCAD."""

import multiprocessing

import numpy as np

from renderer.cache import RenderCache
from renderer.openscad import MeshResult, RenderLimits, Status
from tests.conftest import needs_openscad

pytestmark = needs_openscad

PART = "difference() { cube(6, center = true); sphere(4, $fn = 16); }"


def test_hit_returns_the_same_result_without_running_openscad(tmp_path, monkeypatch):
    cache = RenderCache(str(tmp_path))
    first = cache.run(PART)
    monkeypatch.setattr("renderer.cache.run", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    second = cache.run(PART)
    assert second.status is Status.OK
    assert np.array_equal(first.vertices, second.vertices) and np.array_equal(first.faces, second.faces)


def test_key_depends_on_code_and_limits(tmp_path):
    cache = RenderCache(str(tmp_path))
    limits = RenderLimits()
    assert cache.key(PART, limits) != cache.key(PART + " ", limits)
    assert cache.key(PART, limits) != cache.key(PART, RenderLimits(memory_bytes=1024**3))


def test_timeouts_are_not_cached(tmp_path):
    cache = RenderCache(str(tmp_path))
    cache.put("k" * 64, MeshResult(Status.TIMEOUT))
    assert cache.get("k" * 64) is None
    cache.put("e" * 64, MeshResult(Status.SYNTAX_ERROR, stderr="Parser error"))
    assert cache.get("e" * 64).status is Status.SYNTAX_ERROR


def test_size_stays_bounded(tmp_path):
    cache = RenderCache(str(tmp_path), max_bytes=20_000)
    mesh = MeshResult(Status.OK, np.random.default_rng(0).random((300, 3)), np.zeros((100, 3), np.int64))
    for i in range(40):
        cache.put(f"{i:064x}", mesh)
    assert cache.size_bytes() <= 20_000
    assert cache.get(f"{39:064x}") is not None  # the newest entry survives


def _worker(root: str) -> list[str]:
    cache = RenderCache(root)
    return [str(cache.run(f"cube({1 + i % 3});").status) for i in range(6)]


def test_several_processes_share_one_cache(tmp_path):
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_worker, [str(tmp_path)] * 3)
    assert all(status == "ok" for run in results for status in run)
    assert len(list(tmp_path.rglob("*.mesh"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))
