"""A PPO batch sampled in chunks, each program scored while the rest of the batch is sampled.

:func:`sample_and_submit` draws the batch's programs image chunk by image chunk
(``rollout_chunks`` in :mod:`configs.ppo`) and hands each chunk to a :class:`Scoring` as soon as
it is sampled; with a rewarder that offers ``submit`` (:class:`rl.ppo_loop.PoolRewarder`), OpenSCAD
renders chunk i on the pool's actors while the policy samples chunk i+1. With ``stream_renders``
each program goes to the pool the moment its row ends in eos (:meth:`Scoring.streamer`), while
the rest of its chunk is sampled: at GPU speed sampling is latency-bound and a batch waits for
its longest program, so one chunk then hides the renders. :meth:`Scoring.collect` waits for
every score::

    scoring = Scoring(rewarder, policy.eos_ids, config.length_guard, rows, config.k, records_dir)
    rollout, generate_s = sample_and_submit(policy, config, rows, scoring)
    ...  # work that needs no score: rollout and reference log-probs, values
    breakdowns = scoring.collect()

Staleness 0: the policy does not change between chunks, and nothing is updated before
``collect`` returns, so every program of an iteration is sampled from the policy its update
starts from. Only the order in which the sampler's random numbers are drawn depends on the
chunks (rows are sampled independently, so the distribution of the batch does not).
"""

from __future__ import annotations

import os
import time

import torch

from reward.records import SampleRecord
from reward.score import RewardBreakdown

TRUNCATED = "truncated"


def truncation_breakdown(penalty: float) -> RewardBreakdown:
    """The length guard's verdict on a program that hit max_new_tokens without eos."""
    return RewardBreakdown(total=penalty, ssim=0.0, chamfer=0.0, iou=0.0, valid=0.0, status=TRUNCATED,
                           seconds=0.0, detail="hit max_new_tokens without eos (length guard)")


class _Scored:
    """The job of a rewarder without ``submit``: scored when made."""

    def __init__(self, breakdowns: list[RewardBreakdown]):
        self.breakdowns, self.finished_at = breakdowns, time.perf_counter()

    def result(self) -> list[RewardBreakdown]:
        return self.breakdowns


class Scoring:
    """One iteration's programs on their way through the rewarder: :meth:`submit` each chunk as
    it is sampled, :meth:`collect` every breakdown once, before the advantages.

    Program ``i`` (in sampling order) is for image ``rows[i // k]``. The length guard applies
    here: a program that hit the token budget without eos gets the rewarder's invalid penalty,
    unrendered. A rewarder with ``submit`` gets each chunk at once; one with ``score`` alone
    gets the whole batch in one call from :meth:`collect` (scoring a chunk on the learner's clock
    would overlap nothing). ``wait_s`` counts the learner's seconds spent on the rewarder.
    """

    def __init__(self, rewarder, eos_ids: list[int], length_guard: bool, rows: list, k: int,
                 records_dir: str | None = None):
        self.rewarder, self.eos = rewarder, torch.tensor(list(eos_ids))
        self.length_guard, self.rows, self.k, self.records_dir = length_guard, rows, k, records_dir
        self.texts: list[str] = []
        self.truncated: list[bool] = []
        """Per program: hit the token budget without eos."""
        self.guarded: list[bool] = []
        """Per program: penalised unrendered by the length guard."""
        self.jobs: list[tuple[object, list[int]]] = []  # (job, the program indices it scores)
        self.deferred: list[int] = []  # programs for a rewarder without submit, scored in collect
        self.streamed: dict[int, str] = {}  # programs handed over while their chunk was sampled
        self.wait_s = 0.0
        self.submitted_at: float | None = None

    def _row(self, i: int) -> dict:
        return self.rows[i // self.k]

    def _views(self, i: int) -> tuple[str, str] | None:
        if not self.records_dir:
            return None
        folder, row_id = os.path.join(self.records_dir, "views"), self._row(i)["id"]
        return os.path.join(folder, f"{row_id}_s{i}.png"), os.path.join(folder, f"{row_id}_target.png")

    def _send(self, todo: list[int], texts: list[str], submit) -> None:
        """Programs ``todo`` (spelled ``texts``) to the rewarder: ``submit`` (no wait) or ``score``."""
        if not todo:
            return
        self.submitted_at = self.submitted_at or time.perf_counter()
        args = texts, [self._row(i) for i in todo], [self._views(i) for i in todo]
        self.jobs.append((submit(*args) if submit else _Scored(self.rewarder.score(*args)), todo))

    def streamer(self):
        """An ``on_finished`` for :meth:`policies.base.Policy.sample` of the next chunk: each of its
        programs goes to the rewarder the moment its row ends in eos, while the rest are sampled
        (None where the rewarder has no ``submit``). :meth:`submit` then skips those programs."""
        submit = getattr(self.rewarder, "submit", None)
        if submit is None:
            return None
        first = len(self.texts)

        def on_finished(rows: list[int], texts: list[str]) -> None:
            todo = [first + row for row in rows]
            self.streamed.update(zip(todo, texts, strict=True))
            self._send(todo, texts, submit)

        return on_finished

    def submit(self, rollout) -> None:
        """Hand over the programs of the next ``len(rollout.texts) // k`` images (those not
        already handed over by :meth:`streamer`, whose text must be the rollout's)."""
        started = time.perf_counter()
        first = len(self.texts)
        truncated = (~torch.isin(rollout.tokens.cpu(), self.eos).any(dim=1)).tolist()
        self.texts += rollout.texts
        self.truncated += truncated
        self.guarded += [self.length_guard and cut for cut in truncated]
        todo = [i for i in range(first, len(self.texts)) if not self.guarded[i] and i not in self.streamed]
        for i in range(first, len(self.texts)):
            if i in self.streamed and self.streamed[i] != self.texts[i]:
                raise RuntimeError(f"program {i} was streamed as {self.streamed[i]!r} but sampled as "
                                   f"{self.texts[i]!r}")
        submit = getattr(self.rewarder, "submit", None)
        if submit:
            self._send(todo, [self.texts[i] for i in todo], submit)
        else:
            self.deferred += todo
        self.wait_s += time.perf_counter() - started

    def collect(self) -> list[RewardBreakdown]:
        """Every program's breakdown, in sampling order; waits for the renders still running."""
        started = time.perf_counter()
        self._send(self.deferred, [self.texts[i] for i in self.deferred], None)
        self.deferred = []
        breakdowns = [truncation_breakdown(self.rewarder.invalid_penalty)] * len(self.texts)
        for job, todo in self.jobs:
            for i, breakdown in zip(todo, job.result(), strict=True):
                breakdowns[i] = breakdown
        self.wait_s += time.perf_counter() - started
        return breakdowns

    def span_s(self) -> float:
        """Seconds from the first chunk submitted to the last program scored (after
        :meth:`collect`; 0 when nothing was rendered)."""
        finished = [job.finished_at for job, _ in self.jobs]
        return max(finished) - self.submitted_at if finished else 0.0

    def records(self, rollout, breakdowns: list[RewardBreakdown], iteration: int) -> list[SampleRecord]:
        """Per-sample records of the batch (``rollout``: every chunk, as :func:`concat_rollouts`)."""
        records = []
        for i, breakdown in enumerate(breakdowns):
            row_id = self._row(i)["id"]
            paths = {"target_views": f"views/{row_id}_target.png",
                     "pred_views": None if self.guarded[i] else f"views/{row_id}_s{i}.png"}
            extra = {"iteration": iteration, "batch_index": i // self.k, "sample": i % self.k,
                     "truncated": self.truncated[i], "tokens": int(rollout.mask[i].sum()),
                     "infrastructure": breakdown.infrastructure}
            records.append(SampleRecord.from_breakdown(f"it{iteration}/{row_id}/s{i}", row_id,
                                                       self.texts[i], breakdown, **paths, extra=extra))
        return records


def chunk_bounds(images: int, chunks: int) -> list[tuple[int, int]]:
    """``[start, stop)`` image ranges of ``min(chunks, images)`` chunks, sizes differing by at most 1."""
    chunks = max(1, min(chunks, images))
    edges = [round(c * images / chunks) for c in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def concat_rollouts(rollouts: list, pad_id: int):
    """One :class:`policies.base.Rollout` of chunks sampled one after another: rows in order, on
    the CPU, tokens padded with ``pad_id`` (off the mask) to the widest chunk."""
    if len(rollouts) == 1:
        return rollouts[0]
    width = max(r.tokens.shape[1] for r in rollouts)

    def pad(x: torch.Tensor, value) -> torch.Tensor:
        return torch.nn.functional.pad(x.cpu(), (0, width - x.shape[1]), value=value)

    return type(rollouts[0])(
        tokens=torch.cat([pad(r.tokens, pad_id) for r in rollouts]),
        logprobs=torch.cat([pad(r.logprobs, 0.0) for r in rollouts]),
        mask=torch.cat([pad(r.mask, False) for r in rollouts]),
        texts=[text for r in rollouts for text in r.texts])


def sample_and_submit(policy, config, rows: list, scoring: Scoring):
    """``(rollout, generate_s)``: ``config.k`` programs per image of ``rows``, sampled in
    ``config.rollout_chunks`` chunks, each handed to ``scoring`` as soon as it is sampled (with
    ``config.stream_renders``, each program as soon as it ends in eos);
    ``generate_s`` is the time spent sampling alone."""
    max_len = config.max_new_tokens or policy.config.max_new_tokens
    rollouts, generate_s = [], 0.0
    for start, stop in chunk_bounds(len(rows), config.rollout_chunks):
        began = time.perf_counter()
        stream = scoring.streamer() if config.stream_renders else None
        rollout = policy.sample(rows[start:stop], n=config.k, max_new_tokens=max_len,
                                temperature=config.temperature, top_p=config.top_p,
                                **({"on_finished": stream} if stream else {}))
        generate_s += time.perf_counter() - began
        scoring.submit(rollout)
        rollouts.append(rollout)
    return concat_rollouts(rollouts, policy.tokenizer.pad_token_id), generate_s
