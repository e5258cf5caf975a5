"""Inference without the target: pick among k programs, then tune the kept one's numbers by rendering.

Both steps maximise the same objective, the :class:`reward.agreement.Agreement` of a program's
render with what inference holds (the input picture, or the mesh given with ``--mesh``), scored
on a :class:`renderer.pool.RenderPool` whose scorer is :class:`reward.agreement.AgreementScorer`
(or any pool whose ``score`` answers agreements: :class:`reward.protocol_scorer.Agreements`).

- :func:`pick` (:func:`choose` when the agreements are known): the valid program with the
  highest agreement (ties: the earlier, so the greedy one first); with no valid program, the first.
- :func:`refine`: the program's tunable numeric literals (:func:`renderer.literals.tunable`:
  comments, strings and ``$fn``-style values left alone, zeros skipped) are scaled by factors
  ``2**x`` with ``x`` in ``[-log2(max_factor), log2(max_factor)]`` per literal (x0.5 to x2 by
  default: a bounded search, so no candidate asks the scorer for an absurd mesh). Every candidate
  is written with :func:`renderer.literals.substitute` (integers stay integers, others to 0.01)
  *before* it is scored, so the text returned is exactly the text that scored best. Candidates
  go to the pool a generation at a time; the same text is never rendered twice.

The optimiser is CMA-ES (``cma``, bounded, a population per generation rendered in parallel),
or scipy's bounded Powell (``powell``, one render at a time). ``bench/refine.py optimisers``
chose CMA-ES (``bench/results/refine_optimisers.json``): on 12 test images with 200 renders it
ends at a higher agreement than Powell from the picture (0.657 vs 0.640, paired interval
[+0.003, +0.065]) and from the mesh (0.402 vs 0.375, [+0.007, +0.059]), in about the same time
on 2 cores (6.2 vs 5.9 and 9.3 vs 8.9 s per image). Its settings were chosen on the same images:
sigma 0.5 and patience 12 beat sigma 0.3 and patience 6 (agreement 0.657 vs 0.640).

Guarantees, each tested: at most ``renders`` programs are rendered (the start included when it
is rendered here); no generation is started that the measured render time says would end past
``seconds``, and a generation is cut to what fits; a candidate that fails to render scores
:data:`reward.agreement.INVALID` and is never kept; the result is never worse than the start on
the objective (a candidate replaces the best only when strictly better); a program with no
tunable literal, or whose start does not render, comes back unchanged. The search stops early
when the best has not improved by ``min_improvement`` in ``patience`` generations.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from configs.eval import OPTIMISERS
from renderer.literals import find_literals, substitute, tunable
from renderer.pool import ScoreRequest
from reward.agreement import Agreement


@dataclass(frozen=True)
class RefineSettings:
    """Budgets and search settings of :func:`refine` (``configs.eval`` fills them from options)."""

    renders: int = 200
    """Most programs rendered."""
    seconds: float = 60.0
    """Wall-clock budget."""
    patience: int = 12
    """CMA-ES generations without an improvement of ``min_improvement`` before stopping (powell
    stops on its own tolerance)."""
    min_improvement: float = 1e-3
    """Smallest gain of the objective that counts as an improvement."""
    max_factor: float = 2.0
    """Each literal stays within [value / max_factor, value * max_factor]."""
    sigma: float = 0.5
    """CMA-ES initial step, in log2 of the factor (0.5: about x1.4)."""
    popsize: int | None = None
    """Candidates per CMA-ES generation; None: CMA-ES's default 4 + 3 ln(literals)."""
    optimiser: str = "cma"
    """cma (CMA-ES, a generation rendered in parallel) or powell (scipy, one render at a time)."""
    seed: int = 0
    """Seed of the CMA-ES sampling."""

    def __post_init__(self):
        if self.renders < 1 or self.seconds <= 0 or self.patience < 1 or self.max_factor <= 1:
            raise ValueError(f"bad refine settings: {self}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {', '.join(OPTIMISERS)}, got {self.optimiser!r}")


@dataclass
class RefineResult:
    """What :func:`refine` did."""

    code: str
    """The refined program (the start's text when nothing better was found)."""
    start_code: str
    start: Agreement
    best: Agreement
    """The agreement of ``code`` (``start`` when unchanged)."""
    renders: int
    """Programs rendered (the start included when rendered here)."""
    seconds: float
    generations: int
    stopped: str
    """Why the search ended: renders, seconds, converged, no_literals or invalid_start."""
    literals: int
    """Literals tuned (the search's dimension)."""
    changed: list[dict] = field(default_factory=list)
    """``{"offset", "before", "after"}`` of each literal whose text changed."""
    history: list[float] = field(default_factory=list)
    """Best total after each generation (or render, for powell)."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["start"], out["best"] = self.start.to_dict(), self.best.to_dict()
        return out


def choose(agreements: list[Agreement]) -> int:
    """The index of the kept program among programs of these ``agreements`` (scored already, e.g.
    with the render that scored them otherwise: :class:`reward.protocol_scorer.EvalScorer`)."""
    valid = [i for i, a in enumerate(agreements) if a.valid]
    if not valid:
        return 0
    return max(valid, key=lambda i: (agreements[i].total, -i))


def pick(pool, target_id: str, codes: list[str]) -> tuple[int, list[Agreement]]:
    """``(index, agreements)``: the kept program among ``codes`` (:func:`choose`) and each one's
    agreement, rendered on ``pool``."""
    agreements = pool.score([ScoreRequest(code, target_id) for code in codes])
    return choose(agreements), agreements


class _Stop(Exception):
    """A budget ran out (its name in ``args[0]``)."""


class _Search:
    """Candidates -> program texts -> agreements on the pool, within the budgets; keeps the best."""

    def __init__(self, code, literals, pool, target_id, settings: RefineSettings, start: Agreement, bar):
        self.code, self.literals, self.pool, self.target_id = code, literals, pool, target_id
        self.settings, self.bar = settings, bar
        self.values = np.array([lit.value for lit in literals])
        self.bound = math.log2(settings.max_factor)
        self.seen: dict[str, Agreement] = {code: start}
        self.best_code, self.best = code, start
        self.renders, self.started = 0, time.monotonic()
        self.slot_seconds = max(float(start.seconds), 0.05) * 1.5 + 0.05  # until measured
        self.workers = max(1, int(getattr(pool, "workers", 1)))

    def code_of(self, x) -> str:
        x = np.clip(np.asarray(x, dtype=np.float64), -self.bound, self.bound)
        return substitute(self.code, self.literals, list(self.values * np.exp2(x)))

    def _fits(self, wanted: int) -> int:
        """How many renders of ``wanted`` fit in the render and seconds budgets."""
        left_s = self.settings.seconds - (time.monotonic() - self.started)
        slots = int(left_s // self.slot_seconds)
        return max(0, min(wanted, self.settings.renders - self.renders, slots * self.workers))

    def evaluate(self, xs) -> list[float]:
        """The totals of candidates ``xs``; raises :class:`_Stop` once a budget cut them short."""
        codes = [self.code_of(x) for x in xs]
        new = list(dict.fromkeys(c for c in codes if c not in self.seen))
        fits = self._fits(len(new))
        if fits:
            started = time.monotonic()
            batch = new[:fits]
            scored = self.pool.score([ScoreRequest(c, self.target_id) for c in batch])
            for text, agreement in zip(batch, scored, strict=True):
                self.seen[text] = agreement
                if agreement.valid and agreement.total > self.best.total:
                    self.best_code, self.best = text, agreement
            self.renders += fits
            self.slot_seconds = max(self.slot_seconds if self.renders > fits else 0.0,
                                    (time.monotonic() - started) / math.ceil(fits / self.workers))
            self.bar.update(fits)
            self.bar.set_postfix(best=f"{self.best.total:.3f}", refresh=False)
        if fits < len(new):
            raise _Stop("renders" if self.renders >= self.settings.renders else "seconds")
        return [self.seen[c].total for c in codes]


def refine(code: str, pool, target_id: str, settings: RefineSettings | None = None,
           start: Agreement | None = None, progress: bool = True) -> RefineResult:
    """Tune the numeric literals of ``code`` to maximise its agreement with target ``target_id``.

    Parameters
    ----------
    code : str
        The program to refine.
    pool : RenderPool
        Scoring with an :class:`reward.agreement.AgreementScorer` (or answering agreements so),
        ``target_id`` registered.
    settings : RefineSettings
    start : Agreement or None
        The start's agreement when already known (from :func:`pick`); else rendered here.
    progress : bool
        Show a progress bar (renders, best total).
    """
    from tqdm.auto import tqdm

    settings = settings or RefineSettings()
    started = time.monotonic()
    renders = 0
    if start is None:
        start = pool.score([ScoreRequest(code, target_id)])[0]
        renders = 1
    literals = tunable(find_literals(code))
    left = settings.renders - renders
    if not start.valid or not literals or left < 1:
        stopped = "invalid_start" if not start.valid else "no_literals" if not literals else "renders"
        return RefineResult(code, code, start, start, renders, time.monotonic() - started, 0, stopped,
                            len(literals))
    budget = RefineSettings(**{**asdict(settings), "renders": left,
                               "seconds": max(1e-3, settings.seconds - (time.monotonic() - started))})
    with tqdm(total=budget.renders, desc="refine", unit="render", leave=False, disable=not progress,
              dynamic_ncols=True) as bar:
        search = _Search(code, literals, pool, target_id, budget, start, bar)
        history: list[float] = []
        try:
            generations, stopped = OPTIMISE[settings.optimiser](search, history)
        except _Stop as stop:
            generations, stopped = len(history), stop.args[0]
    return RefineResult(search.best_code, code, start, search.best, renders + search.renders,
                        time.monotonic() - started, generations, stopped, len(literals),
                        _changed(code, search.best_code), history)


def _changed(start: str, refined: str) -> list[dict]:
    """``{"offset", "before", "after"}`` of each literal of ``start`` written differently in
    ``refined`` (substitution keeps the count and order of literals)."""
    pairs = zip(find_literals(start), find_literals(refined), strict=True)
    return [{"offset": old.start, "before": old.text, "after": new.text}
            for old, new in pairs if old.text != new.text]


def _cma(search: _Search, history: list[float]) -> tuple[int, str]:
    """CMA-ES generations (ask, render the generation on the pool, tell) until a budget or convergence."""
    import cma

    settings = search.settings
    options = {"bounds": [-search.bound, search.bound], "seed": settings.seed + 1, "verbose": -9}
    if settings.popsize:
        options["popsize"] = settings.popsize
    strategy = cma.CMAEvolutionStrategy(np.zeros(len(search.literals)), settings.sigma, options)
    while True:
        candidates = strategy.ask()
        totals = search.evaluate(candidates)  # _Stop ends the search here
        strategy.tell(candidates, [-t for t in totals])
        history.append(search.best.total)
        if _stalled(history, settings) or strategy.stop():
            return len(history), "converged"


def _powell(search: _Search, history: list[float]) -> tuple[int, str]:
    """scipy's bounded Powell, one candidate at a time, until a budget or its own tolerance."""
    from scipy.optimize import minimize

    def objective(x) -> float:
        total = search.evaluate([x])[0]
        history.append(search.best.total)
        return -total

    bounds = [(-search.bound, search.bound)] * len(search.literals)
    minimize(objective, np.zeros(len(search.literals)), method="Powell", bounds=bounds,
             options={"xtol": 0.02, "ftol": search.settings.min_improvement, "maxfev": 10**6})
    return len(history), "converged"


OPTIMISE = {"cma": _cma, "powell": _powell}
"""The search of each optimiser name of :data:`configs.eval.OPTIMISERS`."""


def _stalled(history: list[float], settings: RefineSettings) -> bool:
    """No gain of ``min_improvement`` over the last ``patience`` generations."""
    if len(history) <= settings.patience:
        return False
    return history[-1] - history[-1 - settings.patience] < settings.min_improvement


def describe(result: dict) -> str:
    """One line of a :meth:`RefineResult.to_dict`: the agreement before and after, the literals
    changed, renders, seconds and why it stopped."""
    return (f"refine: agreement {result['start']['total']:.3f} -> {result['best']['total']:.3f} "
            f"({len(result['changed'])} of {result['literals']} literals changed, "
            f"{result['renders']} renders, {result['seconds']:.1f} s, stopped: {result['stopped']})")

