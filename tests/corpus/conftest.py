"""A tiny corpus build shared by the corpus tests (in-process renders, no Ray)."""

import pytest

from corpus.build import BuildSettings, build, plan

TINY_N = 12
TINY_CHUNK = 4


def tiny_settings(out, **changes) -> BuildSettings:
    """Settings of the tiny build: 12 parts in chunks of 4, two held-out families from its plan."""
    slots = plan(TINY_N, 0)
    options = dict(
        n=TINY_N,
        out=str(out),
        seed=0,
        workers=0,
        chunk_size=TINY_CHUNK,
        holdout=(slots[0].family, slots[3].family),
    )
    return BuildSettings(**{**options, **changes})


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """``(root, build.json dict)`` of the tiny build."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    info = build(tiny_settings(root), progress=False)
    return str(root), info
