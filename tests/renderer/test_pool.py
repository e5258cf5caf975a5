"""RenderPool on a real local Ray cluster and in-process: order, faults, back-pressure, submit."""

import os
import time

import numpy as np
import pytest

from renderer.openscad import RenderLimits, run
from renderer.pool import RenderPool, RenderWorker, ScoreRequest
from reward.score import RewardWeights, Scorer
from tests.conftest import needs_openscad

pytestmark = needs_openscad

TARGET = "difference() { cube(10, center = true); cylinder(r = 3, h = 20, center = true, $fn = 24); }"


class SizeScorer:
    """A fake scorer for fault tests: returns the part's size; a size of 13 kills the
    worker process and a size of 17 hangs it (stands in for a crash in native code); a size of
    19 takes 5 s (a slow render)."""

    def prepare(self, vertices, faces):
        return None

    def __call__(self, result, prepared):
        size = float(result.vertices.max()) if result.ok else -1.0
        if size == 13.0:
            os._exit(1)
        if size == 17.0:
            time.sleep(3600)
        if size == 19.0:
            time.sleep(5)
        return (str(result.status), size, os.getpid())


def _requests(sizes):
    return [ScoreRequest(f"cube({s});", "t") for s in sizes]


def _requests_without_target(sizes):
    return [ScoreRequest(f"cube({s});") for s in sizes]


def test_in_process_pool_scores_in_order_with_the_real_reward():
    target = run(TARGET)
    pool = RenderPool(Scorer(threads=1), workers=0)
    pool.add_target("t", target.vertices, target.faces)
    codes = [TARGET, "cube(", "cube(4);"]
    results = pool.score([ScoreRequest(code, "t") for code in codes])
    assert [r.status for r in results] == ["ok", "syntax_error", "ok"]
    assert results[0].total > 0.99 and results[1].total == -1.0 and 0 < results[2].total < 0.9


def test_views_are_saved_when_asked(tmp_path):
    from PIL import Image

    target = run(TARGET)
    pool = RenderPool(Scorer(threads=1), workers=0)
    pool.add_target("t", target.vertices, target.faces)
    pred, tgt = str(tmp_path / "pred.png"), str(tmp_path / "target.png")
    pool.score([ScoreRequest("cube(4);", "t", views_path=pred, target_views_path=tgt)])
    pred_img, tgt_img = np.asarray(Image.open(pred)), np.asarray(Image.open(tgt))
    size = RewardWeights().view_size  # the views the reward compared
    assert pred_img.shape == tgt_img.shape == (size, 4 * size)
    assert (pred_img < 250).sum() < (tgt_img < 250).sum()  # the small cube covers less


def test_saved_views_come_from_the_scoring_call_and_equal_a_fresh_render(tmp_path):
    from PIL import Image

    from renderer.views import save_view_row

    calls = []

    class Spy(Scorer):
        def __call__(self, pred, prepared):
            calls.append("__call__")
            return super().__call__(pred, prepared)

        def score_with_views(self, pred, prepared):
            calls.append("score_with_views")
            return super().score_with_views(pred, prepared)

        def pred_views(self, pred, prepared):
            calls.append("pred_views")
            return super().pred_views(pred, prepared)

    target = run(TARGET)
    pool = RenderPool(Spy(threads=1), workers=0)
    pool.add_target("t", target.vertices, target.faces)
    saved = str(tmp_path / "pred.png")
    (breakdown,) = pool.score([ScoreRequest("cube(4);", "t", views_path=saved)])
    assert calls == ["score_with_views"] and breakdown.status == "ok"  # scored and rendered once
    scorer = Scorer(threads=1)
    fresh = str(tmp_path / "fresh.png")
    save_view_row(scorer.pred_views(run("cube(4);"), scorer.prepare(target.vertices, target.faces)), fresh)
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), np.asarray(Image.open(fresh)))


def test_requests_without_target_get_no_prepared_target():
    pool = RenderPool(SizeScorer(), workers=0)
    results = pool.score([ScoreRequest("cube(3);"), ScoreRequest("cube(")])
    assert [r[:2] for r in results] == [("ok", 3.0), ("syntax_error", -1.0)]


def test_unknown_target_is_a_clear_error():
    pool = RenderPool(SizeScorer(), workers=0)
    with pytest.raises(KeyError, match="add_target"):
        pool.score([ScoreRequest("cube(1);", "nope")])


def test_worker_prepares_each_target_once():
    calls = []

    class Counting(SizeScorer):
        def prepare(self, vertices, faces):
            calls.append(1)

    worker = RenderWorker(Counting(), RenderLimits())
    box = [(np.zeros((3, 3)), np.array([[0, 1, 2]]))]
    for _ in range(3):
        worker.score(ScoreRequest("cube(2);", "t"), box)
    assert len(calls) == 1


@pytest.fixture(scope="module")
def ray_pool():
    pool = RenderPool(SizeScorer(), workers=2, item_timeout_s=8)
    pool.add_target("t", np.zeros((3, 3)), np.array([[0, 1, 2]]))
    yield pool
    pool.close()


def test_ray_pool_returns_one_result_per_request_in_order(ray_pool):
    sizes = [1 + (i % 7) for i in range(20)]
    results = ray_pool.score(_requests(sizes))
    assert [r[1] for r in results] == [float(s) for s in sizes]
    assert len({r[2] for r in results}) == 2  # both actors did work


def test_killed_actor_mid_batch_loses_nothing_and_scores_nothing_twice(ray_pool, monkeypatch):
    from renderer import pool as pool_module

    sizes = [2 + (i % 5) for i in range(64)]
    victim = ray_pool.actor_pids()[0]
    original, collected = pool_module._Dispatch._collect, []

    def kill_after_ten(self, ref):  # kill one actor while the batch is in flight
        original(self, ref)
        _assert_slots_consistent(self)
        collected.append(ref)
        if len(collected) == 10:
            os.kill(victim, 9)

    monkeypatch.setattr(pool_module._Dispatch, "_collect", kill_after_ten)
    replaced_before = ray_pool.replaced_actors
    results = ray_pool.score(_requests(sizes))
    assert len(results) == 64
    assert [r[1] for r in results] == [float(s) for s in sizes]
    assert ray_pool.replaced_actors == replaced_before + 1
    assert victim not in ray_pool.actor_pids()


def _assert_slots_consistent(dispatch) -> None:
    """Every actor slot is either idle once or running one program, never both or twice."""
    running = [slot for _, slot, _ in dispatch.running.values()]
    assert len(dispatch.idle) == len(set(dispatch.idle)), f"a slot listed idle twice: {dispatch.idle}"
    assert len(running) == len(set(running)), "two programs on one actor"
    assert not set(dispatch.idle) & set(running), "a busy actor listed idle"
    assert len(dispatch.idle) + len(running) == len(dispatch.pool.actors)


def test_program_that_kills_workers_twice_is_crashed(ray_pool):
    replaced_before = ray_pool.replaced_actors
    results = ray_pool.score(_requests([2, 13, 3]))
    assert results[0][1] == 2.0 and results[2][1] == 3.0
    assert results[1][0] == "crashed"  # the fake scorer's answer for a crashed MeshResult
    # exactly max_attempts (2) actors died for it: one retry, not two
    assert ray_pool.replaced_actors == replaced_before + ray_pool.max_attempts


def test_a_dead_actor_frees_its_slot_exactly_once(ray_pool, monkeypatch):
    from renderer import pool as pool_module

    original = pool_module._Dispatch._collect

    def checked(self, ref):
        original(self, ref)
        _assert_slots_consistent(self)

    monkeypatch.setattr(pool_module._Dispatch, "_collect", checked)
    results = ray_pool.score(_requests([13, 2, 3, 4]))
    assert results[0][0] == "crashed" and [r[1] for r in results[1:]] == [2.0, 3.0, 4.0]


def test_hung_worker_is_replaced_and_its_program_crashed(ray_pool):
    start = time.monotonic()
    results = ray_pool.score(_requests([17, 4]))
    assert results[0][0] == "crashed" and results[1][1] == 4.0
    assert time.monotonic() - start < 60


def test_back_pressure_never_runs_more_programs_than_workers(ray_pool, monkeypatch):
    from renderer import pool as pool_module

    peak = []
    original = pool_module._Dispatch._submit

    def spy(self):
        original(self)
        peak.append(len(self.running))

    monkeypatch.setattr(pool_module._Dispatch, "_submit", spy)
    ray_pool.score(_requests([1 + (i % 4) for i in range(30)]))
    assert max(peak) == 2


def test_submit_returns_at_once_and_a_later_job_shares_the_actors_with_one_in_flight(ray_pool):
    slow = ray_pool.submit(_requests([19]))  # 5 s on one actor
    assert not slow.done()
    quick = ray_pool.submit(_requests([1, 2, 3]))  # the other actor takes these meanwhile
    assert [r[1] for r in quick.result(timeout=60)] == [1.0, 2.0, 3.0]
    assert not slow.done() and slow.finished_at is None
    assert [r[1] for r in slow.result(timeout=60)] == [19.0]
    assert quick.finished_at < slow.finished_at


def test_the_in_process_pool_scores_on_submit():
    job = RenderPool(SizeScorer(), workers=0).submit(_requests_without_target([2, 3]))
    assert job.done() and [r[1] for r in job.result()] == [2.0, 3.0]


def test_a_failing_dispatch_reaches_the_waiting_caller_and_the_pool_recovers(ray_pool, monkeypatch):
    from renderer import pool as pool_module

    def broken(self, ref):
        raise ValueError("a bug in the dispatch")

    monkeypatch.setattr(pool_module._Dispatch, "_collect", broken)
    with pytest.raises(RuntimeError, match="a bug in the dispatch"):
        ray_pool.score(_requests([2, 3]))
    monkeypatch.undo()
    assert [r[1] for r in ray_pool.score(_requests([4, 5]))] == [4.0, 5.0]


def test_closing_the_pool_fails_a_job_in_flight_instead_of_hanging_it():
    pool = RenderPool(SizeScorer(), workers=1)
    pool.add_target("t", np.zeros((3, 3)), np.array([[0, 1, 2]]))
    job = pool.submit(_requests([19]))
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        job.result(timeout=30)
