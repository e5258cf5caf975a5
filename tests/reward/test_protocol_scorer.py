"""reward.protocol_scorer: the evaluation scorer hands back its views with its result, and pickles."""

import dataclasses
import pickle

import numpy as np

from reward.protocol_scorer import ProtocolScorer, ScoredSample
from reward.score import Scorer
from tests.reward.meshes import box, ok

LO, HI = np.array([0.0, 0.0, 0.0]), np.array([3.0, 2.0, 1.0])


def test_score_with_views_is_the_call_and_the_views_of_a_fresh_render():
    scorer = ProtocolScorer(Scorer(threads=1))
    prepared = scorer.prepare(*box(LO, HI))
    pred = ok(*box(LO + 0.2, HI))
    scored, views = scorer.score_with_views(pred, prepared)
    called = scorer(pred, prepared)
    assert isinstance(scored, ScoredSample) and scored.protocol == called.protocol
    assert scored.protocol["valid"] and 0 < scored.protocol["iou"] < 1
    timed = scored.breakdown.score_seconds
    assert scored.breakdown == dataclasses.replace(called.breakdown, score_seconds=timed)
    np.testing.assert_array_equal(views, Scorer(threads=1).pred_views(pred, prepared.reward))


def test_a_protocol_scorer_pickles_and_scores_the_same_after():
    scorer = ProtocolScorer(Scorer(threads=1), protocol=False)
    prepared = scorer.prepare(*box(LO, HI))
    pred = ok(*box(LO, HI + 0.5))
    copy = pickle.loads(pickle.dumps(scorer))
    assert copy(pred, prepared).breakdown.total == scorer(pred, prepared).breakdown.total
    assert copy(pred, prepared).protocol == {"valid": False, "status": "ok", "cd": None, "iou": None}
