"""``RenderPool``: OpenSCAD + scoring of many programs at once, on Ray actors.

Each actor runs ``code -> renderer.openscad.run -> scorer(result, prepared_target)``
for one program at a time. The scorer is any picklable object with
``prepare(vertices, faces)`` and ``__call__(mesh_result, prepared)`` (for
example :class:`reward.score.Scorer`), so this module knows nothing of rewards.
A request that saves views also needs ``score_with_views(mesh_result, prepared)
-> (output, (V, H, W) views)`` and ``target_views(prepared)``.

- Targets are registered once (:meth:`RenderPool.add_target`): their mesh goes
  into Ray's object store, and each actor prepares a target (frame, views,
  samples) the first time it needs it and keeps it.
- :meth:`RenderPool.score` returns one result per request, in input order.
  :meth:`RenderPool.submit` does the same without waiting: it queues the
  requests and returns a :class:`RenderJob` whose ``result()`` waits for them,
  so the caller can go on (a PPO learner samples its next programs while these
  render). Requests of every submitted job share the actors, first come first
  served, on one background thread of the pool. An actor never holds more than
  one program, so a batch larger than the pool starts no more work than there
  are workers (back-pressure).
- Faults: an actor that dies, or that runs past ``item_timeout_s``, is
  killed and replaced and its program runs again; a program that takes down
  ``max_attempts`` actors is scored as a ``crashed`` run. Every request is
  answered exactly once. Such a run, and one whose scoring raised, reaches the
  scorer as an :class:`InfrastructureFault` (``infrastructure`` true): the pool,
  not the program, failed, and a trainer can leave it out of its update.
- A request without a ``target_id`` gets ``prepared=None``: the pool is then a
  parallel map of "OpenSCAD, then this processor" (``corpus.build`` uses it
  to turn programs into meshes and views on every core).
- ``workers=0`` runs the same code in this process, without Ray (unit tests,
  ``--workers 0``); there ``submit`` scores before it returns (no overlap, and
  nothing runs on another thread).

Ray is started bound to this machine with token authentication on
(:mod:`renderer.cluster`, which also says how to join an existing cluster).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass

from renderer.cache import RenderCache
from renderer.openscad import MeshResult, RenderLimits, Status, run, sandbox_prefix
from renderer.views import save_view_row

logger = logging.getLogger(__name__)


@dataclass
class InfrastructureFault(MeshResult):
    """A ``crashed`` run the pool caused, not the program: a worker died or hung on it
    ``max_attempts`` times, or scoring it raised. :func:`reward.score.score` carries
    ``infrastructure`` into the breakdown. An OpenSCAD crash on the program itself is a
    plain ``crashed`` :class:`MeshResult` (the program's)."""

    infrastructure: bool = True


@dataclass(frozen=True)
class ScoreRequest:
    """One program to score against a registered target."""

    code: str
    target_id: str | None = None
    """A registered target; ``None`` calls the scorer with ``prepared=None`` (render-only
    processors, e.g. the corpus build)."""
    views_path: str | None = None
    """If set, the prediction's views (target frame) are saved here as one PNG row."""
    target_views_path: str | None = None
    """If set and missing, the target's views are saved here as one PNG row."""


class RenderJob:
    """The answer to one :meth:`RenderPool.submit`: one result per request, in input order,
    filled in by the pool's dispatch thread as the actors finish them."""

    def __init__(self, size: int):
        self.results: list = [None] * size
        self.left = size
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        """``time.perf_counter()`` when the last result arrived (None until then)."""
        self._event = threading.Event()
        if size == 0:
            self._finish()

    def _set(self, index: int, value) -> None:
        self.results[index] = value
        self.left -= 1
        if self.left == 0:
            self._finish()

    def _fail(self, error: BaseException) -> None:
        if not self.done():
            self.error = error
            self._finish()

    def _finish(self) -> None:
        self.finished_at = time.perf_counter()
        self._event.set()

    def done(self) -> bool:
        """Every request answered (or the dispatch failed)."""
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> list:
        """Wait for every result; raise if the pool's dispatch failed or was closed first."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"{self.left} of {len(self.results)} programs still rendering")
        if self.error is not None:
            raise RuntimeError(f"the render pool failed before answering: {self.error!r}") from self.error
        return self.results


class RenderWorker:
    """Runs and scores programs; the body of each Ray actor (and of ``workers=0``)."""

    def __init__(self, scorer, limits: RenderLimits, cache_dir: str | None = None, max_targets: int = 512):
        self.scorer = scorer
        self.limits = limits
        self.cache = RenderCache(cache_dir) if cache_dir else None
        self.prepared: collections.OrderedDict = collections.OrderedDict()
        self.max_targets = max_targets

    def prepare(self, target_id: str, mesh_box: list):
        """The prepared target, computed from ``mesh_box[0] = (vertices, faces)`` on first use."""
        if target_id in self.prepared:
            self.prepared.move_to_end(target_id)
            return self.prepared[target_id]
        vertices, faces = _resolve(mesh_box[0])
        prepared = self.scorer.prepare(vertices, faces)
        self.prepared[target_id] = prepared
        if len(self.prepared) > self.max_targets:
            self.prepared.popitem(last=False)
        return prepared

    def score(self, request: ScoreRequest, mesh_box: list):
        """Run the request's program with OpenSCAD and score it against its target.

        An exception inside scoring is a bug, not a bad program: it is logged with
        its traceback and the program is scored as an :class:`InfrastructureFault`.
        With ``views_path`` set, the views the scorer rendered go to disk too (the
        scorer must offer ``score_with_views(result, prepared)``, and
        ``target_views(prepared)`` for ``target_views_path``).
        """
        prepared = self.prepare(request.target_id, mesh_box) if request.target_id is not None else None
        code = request.code
        result = self.cache.run(code, self.limits) if self.cache else run(code, self.limits)
        try:
            if request.views_path:
                breakdown, views = self.scorer.score_with_views(result, prepared)
                save_view_row(views, request.views_path)
            else:
                breakdown = self.scorer(result, prepared)
            if request.target_views_path and not os.path.exists(request.target_views_path):
                save_view_row(self.scorer.target_views(prepared), request.target_views_path)
            return breakdown
        except Exception as error:  # noqa: BLE001 - reported, and typed as crashed
            logger.exception("scoring failed for a %s program", result.status)
            return self.scorer(InfrastructureFault(Status.CRASHED, stderr=f"scoring error: {error!r}"), None)

    def pid(self) -> int:
        return os.getpid()


def _resolve(value):
    """Fetch a Ray object reference (actors get targets boxed, so only misses fetch)."""
    try:
        import ray

        if isinstance(value, ray.ObjectRef):
            return ray.get(value)
    except ImportError:
        pass
    return value


class RenderPool:
    """Score OpenSCAD programs against targets with ``workers`` Ray actors.

    Parameters
    ----------
    scorer : object with ``prepare(vertices, faces)`` and ``__call__(result, prepared)``
        (and ``score_with_views``, ``target_views`` for requests that save views)
    workers : int or None
        Actors to run (default: one per CPU); 0 runs everything in this process.
    limits : RenderLimits
        OpenSCAD limits for every program.
    cache_dir : str or None
        A :class:`RenderCache` folder shared by the actors.
    item_timeout_s : float or None
        An actor busy longer than this on one program is presumed hung
        (default: the OpenSCAD timeout plus 30 s).
    max_attempts : int
        Actors a program may take down before it is scored as ``crashed``.
    ray_address : str or None
        Join this Ray cluster instead of starting a local one.
    """

    def __init__(
        self,
        scorer,
        workers: int | None = None,
        limits: RenderLimits | None = None,
        cache_dir: str | None = None,
        item_timeout_s: float | None = None,
        max_attempts: int = 2,
        ray_address: str | None = None,
    ):
        self.scorer = scorer
        self.limits = limits or RenderLimits()
        self.cache_dir = cache_dir
        self.workers = os.cpu_count() if workers is None else workers
        self.item_timeout_s = item_timeout_s or self.limits.timeout_s + 30.0
        self.max_attempts = max_attempts
        self.targets: dict[str, object] = {}
        self.ray_start_s = 0.0
        self.replaced_actors = 0
        self._dispatch: _Dispatch | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        sandbox_prefix(self.limits)  # no OpenSCAD or no sandbox: one clear error now, not in every worker
        if self.workers > 0:
            from renderer.cluster import ensure_ray

            self.ray_start_s = ensure_ray(max(self.workers, os.cpu_count() or 1), ray_address)
            self.actors = [self._new_actor() for _ in range(self.workers)]
        else:
            self.local = RenderWorker(scorer, self.limits, cache_dir)

    def _new_actor(self):
        import ray

        actor_cls = ray.remote(num_cpus=1, max_restarts=0)(RenderWorker)
        return actor_cls.remote(self.scorer, self.limits, self.cache_dir)

    def add_target(self, target_id: str, vertices, faces) -> None:
        """Register a target mesh once; later requests name it by ``target_id``."""
        if target_id in self.targets:
            return
        mesh = (vertices, faces)
        if self.workers > 0:
            import ray

            mesh = ray.put(mesh)
        self.targets[target_id] = mesh

    def score(self, batch: list[ScoreRequest]) -> list:
        """Score every request; one result per request, in input order."""
        return self.submit(batch).result()

    def submit(self, batch: list[ScoreRequest]) -> RenderJob:
        """Queue every request and return at once; ``result()`` of the job waits for them.

        The requests join those of earlier jobs still in flight (one dispatch thread, started
        when work arrives and ended when none is left). With ``workers=0`` they are scored here,
        before this returns.
        """
        missing = {r.target_id for r in batch if r.target_id is not None} - set(self.targets)
        if missing:
            raise KeyError(f"unknown target ids (call add_target first): {sorted(missing)[:5]}")
        if self.workers == 0:
            job = RenderJob(len(batch))
            for i, request in enumerate(batch):
                job._set(i, self.local.score(request, [self.targets.get(request.target_id)]))
            return job
        if not batch:
            return RenderJob(0)
        with self._lock:
            if self._dispatch is not None:
                job = self._dispatch.add(batch)  # None once that dispatch has run out of work
                if job is not None:
                    return job
            self._dispatch = _Dispatch(self, batch)
            self._thread = threading.Thread(target=self._dispatch.run, name="render-dispatch", daemon=True)
            self._thread.start()
            return self._dispatch.jobs[0]

    def actor_pids(self) -> list[int]:
        """Process ids of the live actors (for fault tests)."""
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the actors (the Ray cluster itself stays up for this process); a job still in
        flight raises from ``result()``."""
        if self._dispatch is not None:
            self._dispatch.stop()
            self._thread.join(timeout=10)
            self._dispatch = self._thread = None
        if self.workers > 0:
            import ray

            for actor in self.actors:
                ray.kill(actor)
            self.actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Dispatch:
    """Submitted requests through the actors: at most one program per actor, faults retried.

    :meth:`run` is the body of the pool's dispatch thread: it returns once nothing is pending or
    running. :meth:`add` (any thread) appends a job's requests while it runs; the state below is
    guarded by ``lock``, and only ``ray.wait`` runs outside it.
    """

    POLL_S = 0.05
    """Longest wait before a result of a request added during a ``ray.wait`` is collected."""

    def __init__(self, pool: RenderPool, batch: list[ScoreRequest]):
        self.pool = pool
        self.lock = threading.Lock()
        self.batch: list[ScoreRequest] = []
        self.results: list = []
        self.owner: list[tuple[RenderJob, int]] = []  # item index -> (its job, its place there)
        self.jobs: list[RenderJob] = []
        self.pending: collections.deque = collections.deque()
        self.attempts: list[int] = []
        self.idle = list(range(len(pool.actors)))
        self.running: dict = {}  # ref -> (item index, actor slot, start time)
        self.finished = False
        self._queue(batch)

    def _queue(self, batch: list[ScoreRequest]) -> RenderJob:
        job = RenderJob(len(batch))
        start = len(self.batch)
        self.batch += batch
        self.results += [None] * len(batch)
        self.attempts += [0] * len(batch)
        self.owner += [(job, i) for i in range(len(batch))]
        self.pending.extend(range(start, start + len(batch)))
        self.jobs.append(job)
        return job

    def add(self, batch: list[ScoreRequest]) -> RenderJob | None:
        """Queue ``batch`` as one job and start what idle actors can take now; None once
        :meth:`run` has ended (the pool then starts a new dispatch)."""
        with self.lock:
            if self.finished:
                return None
            job = self._queue(batch)
            self._submit()
            return job

    def run(self) -> list:
        """Dispatch until every request is answered (or :meth:`stop`); the results, in order."""
        import ray

        try:
            while True:
                with self.lock:
                    if not self.finished:
                        self._submit()
                    if self.finished or not (self.pending or self.running):
                        self.finished = True
                        return self.results
                    refs = list(self.running)
                done, _ = ray.wait(refs, num_returns=1, timeout=self.POLL_S)
                if done:  # and every other one that is ready by now
                    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                with self.lock:
                    if self.finished:
                        continue
                    for ref in done:
                        self._collect(ref)
                    self._reap_hung()
        except Exception as error:  # a bug here must reach the caller waiting on result(), not hang it
            logger.exception("the render pool's dispatch failed")
            self.stop(error)
            return self.results

    def stop(self, error: BaseException | None = None) -> None:
        """End :meth:`run` at its next step; jobs not answered yet raise ``error`` from ``result()``."""
        with self.lock:
            self.finished = True
            for job in self.jobs:
                job._fail(error or RuntimeError("the render pool was closed"))

    def _answer(self, index: int, value) -> None:
        self.results[index] = value
        job, place = self.owner[index]
        job._set(place, value)

    def _submit(self) -> None:
        while self.pending and self.idle:
            index, slot = self.pending.popleft(), self.idle.pop()
            request = self.batch[index]
            box = [self.pool.targets.get(request.target_id)]
            ref = self.pool.actors[slot].score.remote(request, box)
            self.running[ref] = (index, slot, time.monotonic())

    def _collect(self, ref) -> None:
        import ray

        index, slot, _ = self.running.pop(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            self._fault(index, slot, f"render worker died: {type(error).__name__}")
            return
        self.idle.append(slot)
        self._answer(index, value)

    def _reap_hung(self) -> None:
        now = time.monotonic()
        for ref, (index, slot, started) in list(self.running.items()):
            if now - started > self.pool.item_timeout_s:
                del self.running[ref]
                self._fault(index, slot, f"render worker hung for {now - started:.0f} s")

    def _fault(self, index: int, slot: int, reason: str) -> None:
        """Replace the actor in ``slot``; retry item ``index`` or score it as crashed."""
        import ray

        ray.kill(self.pool.actors[slot])
        self.pool.actors[slot] = self.pool._new_actor()
        self.pool.replaced_actors += 1
        self.idle.append(slot)
        self.attempts[index] += 1
        if self.attempts[index] >= self.pool.max_attempts:
            crashed = InfrastructureFault(Status.CRASHED, stderr=reason)
            self._answer(index, self.pool.scorer(crashed, None))
        else:
            self.pending.appendleft(index)
