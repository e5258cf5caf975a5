"""The PPO learner's idle share on renders, before and after rendering overlaps sampling.

Runs PPO iterations (:func:`rl.ppo_loop.iterate`) at the main job's settings
(``configs/ppo_demo.yaml``: 4 images x 8 programs, grpo) from a trained SFT checkpoint, on the real
reward (OpenSCAD on a :class:`renderer.pool.RenderPool`, one actor per CPU), in these variants,
interleaved iteration by iteration (the same images and the same seed for every variant at each
iteration, their order rotated so that no variant always runs first):

- ``before``: one sampling call for the batch, then every program scored in one blocking call,
  as the loop did before ``rollout_chunks``: the learner waits for every render;
- ``chunks1``: one sampling call; the renders overlap the rollout/reference log-prob passes;
- ``chunksN``: the batch sampled in N chunks, each rendered while the next is sampled;
- ``streamN``: as ``chunksN``, each program sent to the pool the moment it ends in eos, while the
  rest of its chunk is sampled (``stream_renders``; N from ``--stream_chunks``).

Each variant starts from the checkpoint with its own optimizer. The learner's idle share is
``timing_s/render`` (the learner's wait on the pool) over the iteration time, summed over the
iterations. A second part times sampling alone, the whole batch in one call against chunks
(the cost of smaller generate batches)::

    .venv/bin/python bench/ppo_overlap.py --checkpoint /tmp/fresh_final3/runs/demo/sft/final \\
        --corpus_dir /tmp/fresh_final3/runs/demo/corpus --iterations 12 --chunks 1 2 4
    # on a GPU machine (bench/gpu_ppo.sh's setup), the GPU run's settings:
    python bench/ppo_overlap.py --gpu --checkpoint runs/sft_gpu/final --corpus_dir .dev/corpus_gpu \\
        --workers 14 --batch_size 16 --minibatch_size 32 --out bench/results/ppo_overlap_h100.json

Writes ``bench/results/ppo_overlap.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ppo_overlap.json")
KEYS = ("timing_s/generate", "timing_s/render", "timing_s/update", "timing_s/render_span",
        "timing_s/learner_idle_frac", "charts/samples_per_s", "charts/response_tokens",
        "reward/total/mean", "reward/invalid_frac", "reward/truncated_frac")


class Blocking:
    """The pool's rewarder with ``score`` alone: the loop then scores the batch in one blocking
    call once it is sampled, the learner waiting for every render (the loop before this change)."""

    def __init__(self, rewarder):
        self.rewarder, self.invalid_penalty = rewarder, rewarder.invalid_penalty

    def score(self, codes, rows, views):
        return self.rewarder.score(codes, rows, views)


def make_learner(config, rewarder, gpu: bool):
    import torch

    from rl.checkpoint import load_checkpoint
    from rl.ppo_run import build_learner

    policy = load_checkpoint(config.checkpoint)
    if gpu:  # as rl.ppo_run.train does with --gpus
        policy.to(torch.device("cuda", torch.cuda.current_device()))
    policy.freeze_reference()
    return build_learner(config, policy, rewarder)


def warm_pool(pool, rewarder, rows, workers: int) -> None:
    """Register every target the run will use and have each actor prepare it (not timed)."""
    codes = ["cube(1);"] * (2 * max(workers, 1))
    for row in rows:
        rewarder.score(codes, [row] * len(codes), [None] * len(codes))


def summarise(lines: list[dict], programs: int) -> dict:
    """Sums over the iterations: seconds per phase, the idle share, programs per second."""
    seconds = {phase: sum(m[f"timing_s/{phase}"] for m in lines)
               for phase in ("generate", "render", "update", "render_span")}
    total = seconds["generate"] + seconds["render"] + seconds["update"]
    return {
        "iterations": len(lines),
        "iteration_s_total": round(total, 2),
        **{f"{phase}_s": round(value, 2) for phase, value in seconds.items()},
        "learner_idle_frac": round(seconds["render"] / total, 3),
        "learner_idle_frac_median": round(statistics.median(m["timing_s/learner_idle_frac"] for m in lines),
                                          3),
        "share": {phase: round(seconds[phase] / total, 3) for phase in ("generate", "render", "update")},
        "programs_per_s": round(programs * len(lines) / total, 2),
        "programs_per_s_median": round(statistics.median(m["charts/samples_per_s"] for m in lines), 2),
        "response_tokens_mean": round(statistics.mean(m["charts/response_tokens"] for m in lines), 1),
        "truncated_frac_mean": round(statistics.mean(m["reward/truncated_frac"] for m in lines), 3),
        "reward_mean": round(statistics.mean(m["reward/total/mean"] for m in lines), 3),
    }


def time_sampling(policy, config, rows, chunks: list[int], repeats: int) -> dict:
    """Seconds to sample the batch in each number of chunks, ``repeats`` seeds each (the same seeds
    for every setting), with the tokens sampled and the token slots computed (rows x steps)."""
    from rl.ppo_rollout import chunk_bounds
    from rl.ppo_run import seed_everything

    max_len = config.max_new_tokens or policy.config.max_new_tokens
    out = {}
    for n in chunks:
        seconds, tokens, slots = [], 0, 0
        for seed in range(repeats):
            seed_everything(seed)
            began = time.perf_counter()
            for start, stop in chunk_bounds(len(rows), n):
                rollout = policy.sample(rows[start:stop], n=config.k,
                                        max_new_tokens=max_len, temperature=config.temperature)
                tokens += int(rollout.mask.sum())
                slots += rollout.mask.numel()
            seconds.append(time.perf_counter() - began)
        out[f"chunks{n}"] = {"seconds": [round(s, 2) for s in seconds],
                             "seconds_mean": round(statistics.mean(seconds), 2), "tokens_sampled": tokens,
                             "token_slots": slots,
                             "ms_per_token_sampled": round(1000 * sum(seconds) / tokens, 2)}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained SFT policy folder")
    parser.add_argument("--corpus_dir", required=True, help="its corpus (train split targets)")
    parser.add_argument("--config", default="configs/ppo_demo.yaml", help="the PPO settings")
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations per variant")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4], help="rollout_chunks to run")
    parser.add_argument("--stream_chunks", type=int, nargs="*", default=[1],
                        help="rollout_chunks to run with stream_renders (none: no stream variant)")
    parser.add_argument("--workers", type=int, default=None, help="render actors (default: one per CPU)")
    parser.add_argument("--batch_size", type=int, default=None, help="images per iteration (--config's)")
    parser.add_argument("--minibatch_size", type=int, default=None, help="programs per step (--config's)")
    parser.add_argument("--sampling_repeats", type=int, default=3, help="seeds of the sampling-only part")
    parser.add_argument("--gpu", action="store_true", help="learners on the GPU, renders on CPUs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)

    from configs.loader import load
    from configs.ppo import PPOConfig
    from renderer.openscad import RenderLimits, openscad_info
    from renderer.pool import RenderPool
    from reward.score import Scorer
    from rl.ppo_loop import PoolRewarder, iterate
    from rl.ppo_run import load_train_rows, seed_everything
    from rl.ppo_state import batch_indices
    from rl.runtime import quiet_libraries, set_threads

    overrides = [f"checkpoint={args.checkpoint}", f"corpus_dir={args.corpus_dir}"]
    overrides += [f"{name}={getattr(args, name)}" for name in ("workers", "batch_size", "minibatch_size")
                  if getattr(args, name) is not None]
    base = load(PPOConfig, args.config, overrides)
    set_threads(base.threads)
    quiet_libraries()
    variants = {"before": (1, True, False), **{f"chunks{n}": (n, False, False) for n in args.chunks},
                **{f"stream{n}": (n, False, True) for n in args.stream_chunks}}
    pool = RenderPool(Scorer(base.reward, threads=1), workers=base.workers,
                      limits=RenderLimits(timeout_s=base.render_timeout))
    rewarder = PoolRewarder(pool, args.corpus_dir, base.reward.invalid_penalty)
    learners = {}
    for name, (chunks, blocking, stream) in variants.items():
        config = PPOConfig.from_dict({**base.to_dict(), "rollout_chunks": chunks, "stream_renders": stream})
        learners[name] = make_learner(config, Blocking(rewarder) if blocking else rewarder, args.gpu)
    _, rows = load_train_rows(base, learners["before"].policy)
    batches = [[rows[i] for i in batch_indices(len(rows), args.seed, it * base.batch_size, base.batch_size)]
               for it in range(args.iterations)]
    started = time.perf_counter()
    warm_pool(pool, rewarder, [row for batch in batches for row in batch], pool.workers)
    print(f"ppo_overlap: pool warm in {time.perf_counter() - started:.0f} s; {len(variants)} variants x "
          f"{args.iterations} iterations of {base.batch_size} x {base.k} programs", flush=True)
    lines: dict[str, list[dict]] = {name: [] for name in variants}
    names = list(variants)
    for it, batch in enumerate(batches, start=1):
        for name in names[it % len(names):] + names[: it % len(names)]:
            seed_everything(args.seed * 1000 + it)
            metrics, _ = iterate(learners[name], batch, it)
            lines[name].append({k: metrics[k] for k in KEYS})
            print(f"  it {it} {name:8s} idle {metrics['timing_s/learner_idle_frac']:.2f} "
                  f"gen {metrics['timing_s/generate']:.2f}s render {metrics['timing_s/render']:.2f}s "
                  f"update {metrics['timing_s/update']:.2f}s span {metrics['timing_s/render_span']:.2f}s "
                  f"{metrics['charts/samples_per_s']:.2f} programs/s", flush=True)
    programs = base.batch_size * base.k
    results = {name: {"rollout_chunks": variants[name][0], "blocking_render": variants[name][1],
                      "stream_renders": variants[name][2],
                      **summarise(lines[name], programs), "per_iteration": lines[name]} for name in variants}
    sampling = time_sampling(learners["before"].policy, base, batches[0], sorted({1, *args.chunks}),
                             args.sampling_repeats)
    pool.close()
    data = {
        "bench": "ppo_overlap",
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}; learner on "
                   f"{learners['before'].policy.device}, torch threads {base.threads}; {pool.workers} render "
                   f"actors; OpenSCAD {openscad_info().version}",
        "command": "python bench/ppo_overlap.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"config": args.config, "checkpoint": args.checkpoint, "corpus_dir": args.corpus_dir,
                     "batch_size": base.batch_size, "k": base.k, "estimator": base.estimator,
                     "ppo_epochs": base.ppo_epochs, "minibatch_size": base.minibatch_size,
                     "temperature": base.temperature, "workers": pool.workers, "seed": args.seed},
        "definitions": {
            "learner_idle_frac": "sum of timing_s/render (the learner waiting on the pool) over the sum of "
                                 "iteration times (timing_s/generate + render + update)",
            "programs_per_s": "programs sampled and scored per second of iteration time",
            "render_span_s": "pool wall time from the first program submitted to the last scored, overlapped",
        },
        "variants": results,
        "sampling_only": sampling,
    }
    write_json(args.out, data)
    return data


if __name__ == "__main__":
    main()
