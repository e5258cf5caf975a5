"""rl.eval_scoring on the real OpenSCAD: a program already scored for its target is not rendered
again, and takes the same score and views."""

from __future__ import annotations


class CountingPool:
    """The real pool, counting the programs it is asked to render."""

    def __init__(self, pool):
        self.pool, self.rendered = pool, []

    def score(self, requests):
        self.rendered += [request.code for request in requests]
        return self.pool.score(requests)


def test_unchanged_programs_are_not_rendered_again(tiny_corpus, tmp_path):
    from corpus.dataset import load_mesh
    from renderer.pool import RenderPool
    from reward.protocol_scorer import EvalScorer
    from rl.eval import load_rows
    from rl.eval_scoring import score, scored_by_text

    rows = [dict(r) for r in load_rows(tiny_corpus, "test", 2)]
    pool = RenderPool(EvalScorer(), workers=0)
    for row in rows:
        pool.add_target(row["id"], load_mesh(tiny_corpus, row), None)
    counting = CountingPool(pool)
    broken, right = "cube([1, 2;", rows[1]["code"]
    greedy = [(0, "greedy", 0, broken), (1, "greedy", 0, right)]
    first = score(counting, rows, greedy, str(tmp_path))
    assert not first[0].protocol.get("valid") and first[1].protocol.get("valid")
    known = scored_by_text(rows, greedy, first, str(tmp_path))
    bigger = "scale(2) " + right
    fitted = [(0, "fitted", 0, broken), (1, "fitted", 0, bigger), (1, "dimensioned", 0, right)]
    again = score(counting, rows, fitted, str(tmp_path), known)
    assert counting.rendered == [broken, right, bigger]  # only the changed program is rendered again
    assert again[0] is first[0] and again[2] is first[1]
    assert again[1].breakdown.iou < first[1].breakdown.iou  # scaled: another score, from its own render
    greedy_png = (tmp_path / f"{rows[1]['id']}_greedy.png").read_bytes()
    assert (tmp_path / f"{rows[1]['id']}_dimensioned.png").read_bytes() == greedy_png
    assert (tmp_path / f"{rows[1]['id']}_fitted.png").read_bytes() != greedy_png
