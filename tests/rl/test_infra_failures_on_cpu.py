"""Failures of the render pool are typed apart from failures of the program (PPO drops the former).

A worker that dies or hangs past its retries, or a scorer that raises, gives a breakdown with
``infrastructure`` set; a syntax error or an OpenSCAD crash on the program keeps the penalty and
``infrastructure`` false. How PPO leaves them out is tested in ``test_ppo_loop_on_cpu.py``.
"""

from __future__ import annotations

import sys
import types

from renderer.openscad import MeshResult, Status, run
from renderer.pool import InfrastructureFault, RenderPool, ScoreRequest, _Dispatch
from reward.score import Scorer
from tests.conftest import needs_openscad


class RaisingScorer(Scorer):
    """The real reward, except that scoring a mesh raises (a bug in scoring, not in the program)."""

    def __call__(self, pred, prepared):
        if pred.ok:
            raise RuntimeError("a bug in scoring")
        return super().__call__(pred, prepared)


@needs_openscad
def test_a_scoring_exception_is_infrastructure_and_a_syntax_error_is_the_programs():
    target = run("cube(10);")
    pool = RenderPool(RaisingScorer(threads=1), workers=0)
    pool.add_target("t", target.vertices, target.faces)
    raised, syntax = pool.score([ScoreRequest("cube(4);", "t"), ScoreRequest("cube(", "t")])
    assert raised.infrastructure and raised.status == "crashed" and "scoring error" in raised.detail
    assert not syntax.infrastructure and syntax.status == "syntax_error" and syntax.total == -1.0


def test_a_worker_that_dies_past_its_retries_is_infrastructure(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(kill=lambda actor: None))
    pool = types.SimpleNamespace(actors=[object()], _new_actor=object, replaced_actors=0, max_attempts=2,
                                 scorer=Scorer(threads=1), targets={})
    dispatch = _Dispatch(pool, [ScoreRequest("cube(1);", "t")])
    dispatch.pending.clear()
    dispatch._fault(0, 0, "render worker died: ActorDiedError")
    assert dispatch.results[0] is None and list(dispatch.pending) == [0]  # retried first
    dispatch._fault(0, 0, "render worker hung for 61 s")
    (breakdown,) = dispatch.results
    assert breakdown.infrastructure and breakdown.status == "crashed" and breakdown.total == -1.0
    assert "hung" in breakdown.detail and pool.replaced_actors == 2


def test_an_openscad_crash_on_the_program_keeps_the_penalty():
    scorer = Scorer(threads=1)
    own = scorer(MeshResult(Status.CRASHED, stderr="Segmentation fault"), None)
    assert not own.infrastructure and own.total == -1.0
    pool_fault = scorer(InfrastructureFault(Status.CRASHED, stderr="render worker died"), None)
    assert pool_fault.infrastructure and pool_fault.total == -1.0
