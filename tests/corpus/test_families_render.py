"""Every family renders with the real OpenSCAD; generate_valid retries and counts rejects."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import corpus.families as families
from corpus.families import FAMILIES, Part, derive_seed, generate, generate_valid, is_valid_mesh
from renderer.openscad import RenderLimits, run
from tests.conftest import needs_openscad

pytestmark = needs_openscad

LIMITS = RenderLimits(timeout_s=60)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_renders_a_3d_mesh_for_three_seeds(family):
    parts = [generate(family, seed) for seed in range(3)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: run(p.code, LIMITS), parts))
    for part, result in zip(parts, results, strict=True):
        assert result.ok, f"{family} seed {part.seed}: {result.status}\n{result.stderr}"
        assert is_valid_mesh(result), f"{family} seed {part.seed}: mesh is flat"
        assert "WARNING" not in result.stderr, f"{family} seed {part.seed}:\n{result.stderr}"


def test_generate_valid_takes_the_first_valid_part():
    part, result, rejects = generate_valid("washer", 0, LIMITS)
    assert rejects == 0 and result.ok
    assert part == generate("washer", 0)


def _bad_until(good_from: int):
    """A stand-in for generate() whose first ``good_from`` tries give a broken program."""
    calls = []

    def fake(family, seed):
        calls.append(seed)
        code = "cube([1, 2, 3]);" if len(calls) > good_from else "cube([1, 2, 3]"
        return Part(family, seed, {"variant": "fake"}, code)

    return fake, calls


def test_generate_valid_retries_with_derived_seeds(monkeypatch):
    fake, calls = _bad_until(good_from=2)
    monkeypatch.setattr(families, "generate", fake)
    part, result, rejects = generate_valid("washer", 11, LIMITS, max_tries=5)
    assert rejects == 2 and result.ok
    assert calls == [11, derive_seed(11, 1), derive_seed(11, 2)]
    assert part.seed == derive_seed(11, 2)


def test_generate_valid_returns_the_last_failure_after_max_tries(monkeypatch):
    fake, calls = _bad_until(good_from=99)
    monkeypatch.setattr(families, "generate", fake)
    part, result, rejects = generate_valid("washer", 3, LIMITS, max_tries=3)
    assert rejects == 3 and not result.ok and len(calls) == 3
    assert part.seed == derive_seed(3, 2)


def test_generate_valid_rejects_a_2d_program(monkeypatch):
    monkeypatch.setattr(families, "generate", lambda f, s: Part(f, s, {}, "square(10);"))
    _, result, rejects = generate_valid("washer", 0, LIMITS, max_tries=2)
    assert rejects == 2 and not is_valid_mesh(result)
