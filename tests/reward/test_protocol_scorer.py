"""reward.protocol_scorer: the evaluation scorer hands back its views with its result, and pickles;
EvalScorer adds the agreement with the input from the same render."""

import dataclasses
import pickle

import numpy as np

from renderer.openscad import Status
from renderer.pool import InfrastructureFault
from reward.agreement import AgreementScorer
from reward.protocol_scorer import Agreements, EvalScorer, ProtocolScorer, ScoredSample
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


def test_eval_scorer_gives_the_protocol_figures_and_the_agreement_of_one_result():
    scorer = EvalScorer(ProtocolScorer(Scorer(threads=1)), AgreementScorer())
    target, pred = box(LO, HI), ok(*box(LO + 0.2, HI))
    scored = scorer(pred, scorer.prepare(target, (None, target)))
    alone = ProtocolScorer(Scorer(threads=1))(pred, ProtocolScorer().prepare(*target))
    assert scored.protocol == alone.protocol and scored.breakdown.total == alone.breakdown.total
    assert scored.agreement == AgreementScorer()(pred, AgreementScorer().prepare(None, target))
    assert scorer(pred, scorer.prepare(target, None)).agreement is None


def test_an_input_alone_scores_the_agreement_only_and_a_fault_says_so_everywhere():
    scorer = pickle.loads(pickle.dumps(EvalScorer()))
    target, pred = box(LO, HI), ok(*box(LO, HI))
    candidate = scorer(pred, scorer.prepare(None, (None, target)))
    assert candidate.breakdown is None and candidate.agreement.valid and candidate.agreement.total > 0.99
    fault = scorer(InfrastructureFault(Status.CRASHED, stderr="worker died"), None)
    assert fault.breakdown.infrastructure and fault.agreement.infrastructure and not fault.agreement.valid


def test_agreements_shows_an_eval_pool_as_an_agreement_pool():
    agreement = AgreementScorer()(ok(*box(LO, HI)), AgreementScorer().prepare(None, box(LO, HI)))
    scored = ScoredSample(None, {}, agreement)
    pool = type("Pool", (), {"workers": 3, "score": lambda self, batch: [scored] * len(batch)})()
    view = Agreements(pool)
    assert view.workers == 3 and view.score(["a", "b"]) == [agreement, agreement]
