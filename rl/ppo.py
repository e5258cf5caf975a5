"""PPO refinement with rendering in the loop: every sampled program is run by OpenSCAD and scored.

Commands::

    python -m rl.sft                                    # first: the SFT policy in runs/sft/final
    python -m rl.ppo                                    # defaults (configs: PPOConfig), 100 iterations
    python -m rl.ppo --config configs/ppo.yaml --iterations 20 --batch_size 4 --k 4
    python -m rl.ppo --estimator grpo --k 8             # group baseline instead of the value head
    python -m rl.ppo --workers 0                        # render in this process (no Ray)
    python -m rl.ppo --help                             # every setting, with its help
    python -m reward.report runs/ppo/records/it100/records.jsonl --out /tmp/report   # any records

Each iteration draws ``batch_size`` train images (a seeded order; the position is saved),
samples ``k`` programs per image, scores them on the RenderPool (SSIM + chamfer + IoU +
validity, :mod:`reward.score`), computes the per-token KL to the frozen SFT policy, turns
scores into advantages (gae: the KL as a penalty in the token rewards; grpo: the KL as a term of
the loss), and runs ``ppo_epochs`` epochs of clipped-PPO minibatch steps
(:mod:`rl.ppo_loop`; the math is :mod:`rl.core_algos`). One line per iteration goes to stdout
and to ``runs/<name>/metrics.jsonl`` under ``reward/``, ``losses/``, ``kl/``, ``charts/`` and
``timing_s/``; every ``records_every`` iterations the samples are written as records with view
PNGs to ``runs/<name>/records/it<N>/``, and the last of them gets the HTML reward report.

Metrics per iteration: ``reward/{total,ssim,chamfer,iou}/mean`` (over all programs, invalid ones
included, infrastructure failures left out), ``reward/invalid_frac``, ``reward/truncated_frac``,
``reward/duplicate_frac``, ``reward/infra_failed_frac`` (programs the render pool failed on, left
out of the update); ``losses/{pg_loss,v_loss,kl_loss,approx_kl,clipfrac,entropy}`` (means over
the minibatch steps; kl_loss for grpo),
``losses/explained_var`` (value head before the update; null for grpo); ``kl/ref_mean`` (KL to
the reference summed over a program's tokens, mean over programs; the adaptive controller
steers it to ``kl_target`` over ``kl_horizon_iterations``), ``kl/ref_token_mean``, ``kl/coef``
(the coefficient used);
``charts/samples_per_s``, ``charts/response_tokens``; ``timing_s/{generate,render,update}``
(render: the learner's wait on the pool; each program is rendered from the moment it ends in
eos, while the rest of the batch is sampled, all from the same policy, so PPO stays on-policy),
``timing_s/render_span`` (the pool's own time on the batch) and ``timing_s/learner_idle_frac``.

Re-running the same command after a kill resumes from the newest ``checkpoint-N`` (policy,
AdamW, RNG states, data position, KL coefficient; see :mod:`rl.ppo_state`): with a fixed seed
on CPU and ``--workers 0`` the next iteration's metrics equal an uninterrupted run's (timings
aside). Raise ``--iterations`` to continue a finished run.

Reward-hack guards:

- A program that fails (syntax, runtime, timeout, forbidden include/import, too large) or
  whose mesh is empty, not 3-D or degenerate gets the reward's ``invalid_penalty``, never
  NaN (:mod:`reward.score`): the policy cannot profit from output OpenSCAD does not accept.
- Length guard (``length_guard``): a response that reaches ``max_new_tokens`` without eos gets
  the invalid penalty without being rendered (status ``truncated``), so rambling until the
  budget runs out is never rewarded, and it costs no OpenSCAD time.
- ``reward/duplicate_frac``: the fraction of programs whose exact text was also sampled for a
  different target in the same batch. A policy that collapses onto one generic part that
  scores fairly everywhere shows up here before it shows up in the reward.
- The KL penalty to the SFT reference keeps the policy near programs that look like the corpus.

``--gpus N`` runs N data-parallel learners on GPUs through Ray Train, ``--ray_workers N`` the
same on CPU processes (gloo); render actors stay on the CPUs (:mod:`rl.ppo_dist`). With neither,
one learner runs in this process (:mod:`rl.ppo_run`). Bad input is one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import sys

from configs.cli import Parser, UsageError, fail
from configs.loader import ConfigError, add_arguments, from_args
from configs.ppo import PPOConfig
from renderer.errors import RendererUnavailable
from rl.ppo_run import PROG, train


def run(config: PPOConfig, rewarder=None, rows=None) -> dict:
    """Train; the summary dict (also ``runs/<name>/ppo_summary.json``).

    With ``gpus`` or ``ray_workers`` set the run goes to Ray Train learners
    (:func:`rl.ppo_dist.run_distributed`), else one learner trains here (:func:`rl.ppo_run.train`;
    ``rewarder`` and ``rows`` are its test seams).
    """
    if config.gpus or config.ray_workers:
        from rl.ppo_dist import run_distributed

        return run_distributed(config)
    return train(config, rewarder, rows)


def main(argv: list[str] | None = None) -> int:
    description = "PPO refinement of an image -> OpenSCAD policy, rendering in the loop."
    parser = Parser(prog=PROG, description=description)
    add_arguments(parser, PPOConfig)
    args = parser.parse_args(argv)
    try:
        summary = run(from_args(PPOConfig, args))
    except (ConfigError, UsageError, RendererUnavailable) as error:
        fail(PROG, error)
    print(f"{PROG}: iteration {summary['iteration']} in {summary['wall_seconds']:.0f} s; policy in "
          f"{summary['final']}; metrics in {os.path.join(summary['run_dir'], 'metrics.jsonl')}"
          + (f"; report {summary['report']}" if summary["report"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
