"""RenderPool on Ray actors with the real reward and the real sandboxed OpenSCAD.

Its own module (and pool) so that the fake-scorer pool of ``test_pool.py`` has
released its CPUs: two actors of one CPU each fill this 2-core machine.
"""

import os
import pathlib
import tempfile
import time

import pytest

from renderer.openscad import RenderLimits, run
from renderer.pool import RenderPool, ScoreRequest
from reward.score import Scorer
from tests.conftest import needs_openscad
from tests.renderer.processes import live_openscad_runs, run_folders_in

pytestmark = needs_openscad

TARGET = "difference() { cube(10, center = true); cylinder(r = 3, h = 20, center = true, $fn = 24); }"
PROGRAMS = [TARGET, "cube(", "cube(4);", 'import("/etc/passwd");', "sphere(5, $fn = 16);", "square(3);"]
# Runs for minutes on one core with constant memory (an empty list comprehension over 1e10 pairs):
# a million spheres, the earlier choice, reached the 2 GiB memory cap within the pool's 15 s on an
# AVX-512 EPYC and ended as too_large before the actor was given up.
HANG = "x = [for (i = [0:99999], j = [0:99999]) if (i < 0) 1];\ncube(len(x) + 1);"


@pytest.fixture(scope="module")
def scorer_pool():
    target = run(TARGET)
    # 15 s: a fresh actor's first program (imports, the target prepared) on a loaded 2-core CI
    # machine took over 6 s once, and every program was given up as crashed
    pool = RenderPool(Scorer(threads=1), workers=2, limits=RenderLimits(timeout_s=60), item_timeout_s=15)
    pool.add_target("t", target.vertices, target.faces)
    yield pool
    pool.close()


def test_ray_actors_with_the_real_scorer_agree_with_the_in_process_pool(scorer_pool):
    local = RenderPool(Scorer(threads=1), workers=0)
    target = run(TARGET)
    local.add_target("t", target.vertices, target.faces)
    requests = [ScoreRequest(code, "t") for code in PROGRAMS]
    remote, here = scorer_pool.score(requests), local.score(requests)
    assert [r.status for r in remote] == ["ok", "syntax_error", "ok", "forbidden", "ok", "not_3d"]
    # equal to float rounding (a Ray actor and this process differed by 6e-9 on an AVX-512 EPYC)
    assert [r.total for r in remote] == pytest.approx([r.total for r in here], abs=1e-6)
    assert remote[0].total > 0.99 and remote[1].total == -1.0


def test_hung_openscad_on_a_given_up_actor_leaves_no_process_and_no_folder(scorer_pool):
    """The pool gives up on an actor stuck in a long OpenSCAD run and kills it: OpenSCAD dies
    with it (the sandbox dies with its parent) and no run folder is left."""
    temp = pathlib.Path(tempfile.gettempdir())
    mine = os.getpid()  # this process started the local Ray cluster: its actors descend from it
    processes, folders = set(live_openscad_runs(mine)), set(run_folders_in(temp))
    results = scorer_pool.score([ScoreRequest(HANG, "t"), ScoreRequest("cube(4);", "t")])
    assert results[0].status == "crashed" and results[1].status == "ok"
    deadline = time.monotonic() + 10
    while set(live_openscad_runs(mine)) - processes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(live_openscad_runs(mine)) - processes == set()
    assert set(run_folders_in(temp)) - folders == set()
