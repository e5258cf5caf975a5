"""Properties of the part families that need no OpenSCAD: registry, determinism, sizes, style."""

import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from corpus.families import FAMILIES, Part, derive_seed, generate, is_valid_mesh
from renderer.openscad import MeshResult, Status

SIZE_SEEDS = range(40)


def test_registry_has_at_least_12_families():
    assert len(FAMILIES) >= 12
    for name, family in FAMILIES.items():
        assert family.name == name and family.description and callable(family.generate)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_seed_gives_the_same_code(family):
    for seed in range(5):
        first, again = generate(family, seed), generate(family, seed)
        assert isinstance(first, Part)
        assert (first.family, first.seed) == (family, seed)
        assert first.code == again.code and first.params == again.params


def _digest(seeds=range(5)) -> str:
    text = "".join(generate(f, s).code for f in sorted(FAMILIES) for s in seeds)
    return hashlib.sha256(text.encode()).hexdigest()


def test_code_does_not_depend_on_the_process_or_hash_seed():
    script = "from tests.corpus.test_families import _digest; print(_digest())"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for hash_seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=root)
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == _digest()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_different_seeds_give_different_code(family):
    codes = [generate(family, seed).code for seed in range(10)]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_code_sizes_in_range(family):
    sizes = [generate(family, seed).code_bytes for seed in SIZE_SEEDS]
    assert min(sizes) >= 100 and max(sizes) <= 10_000, (min(sizes), max(sizes))


def test_corpus_sizes_span_small_to_long_programs():
    sizes = sorted(generate(f, s).code_bytes for f in FAMILIES for s in SIZE_SEEDS)
    assert sizes[0] < 300, "no short programs (washer-sized)"
    assert sizes[-1] > 5000, "no long programs (configurable enclosures, big panels)"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_programs_look_hand_written(family):
    for seed in range(10):
        part = generate(family, seed)
        code = part.code
        assert re.search(r"^\w+ = [^;]+;", code, re.M), "no named parameter at the top"
        assert not re.search(r"\d\.\d{4,}", code), "a number with more than 3 decimals"
        assert not re.search(r"\b(nan|inf|undef)\b", code), "a non-finite or undefined value"
        assert code.endswith("\n") and "\t" not in code
        assert part.params and "variant" in part.params


def test_unknown_family_names_the_known_ones():
    with pytest.raises(KeyError, match="flange"):
        generate("no_such_family", 0)


def test_derived_seeds_are_distinct_and_stable():
    seeds = [derive_seed(7, attempt) for attempt in range(6)]
    assert seeds[0] == 7 and len(set(seeds)) == 6
    assert seeds == [derive_seed(7, attempt) for attempt in range(6)]


def test_is_valid_mesh_rejects_failed_and_flat_results():
    cube = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    faces = np.array([[0, 1, 2]])
    assert is_valid_mesh(MeshResult(Status.OK, cube, faces))
    flat = cube.copy()
    flat[:, 2] = 0
    assert not is_valid_mesh(MeshResult(Status.OK, flat, faces))
    assert not is_valid_mesh(MeshResult(Status.NOT_3D))
    assert not is_valid_mesh(MeshResult(Status.OK, cube, np.zeros((0, 3), int)))
