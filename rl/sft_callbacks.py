"""``transformers.Trainer`` callbacks of ``rl.sft``: metrics line, divergence stop, generation evaluation.

- :class:`MetricsProgress` keeps the Trainer's progress bar and prints one line per logging
  step with namespaced names: ``step 20/300 train/loss=2.31 train/grad_norm=0.84 train/lr=0.00098
  charts/tokens_per_s=4120``.
- :class:`StepClock` times every optimizer step, for the steady rate in the run's summary
  (``steady_steps_per_s``: the second half of the run's steps, past start-up and warm-up).
- :class:`StopOnNonFinite` ends the run with :class:`TrainingDiverged` at the first NaN or
  infinite loss or gradient norm, rather than training on and saving NaN weights.
- :class:`GenerationEval` greedily decodes a program for each of a few val images every
  ``every`` steps (and at the last step), runs and scores them on a
  :class:`renderer.pool.RenderPool`, and logs one line and a ``log_history`` entry:
  ``eval/valid_frac``, ``eval/reward_mean``, ``eval/iou_mean``, ``eval/ssim_mean`` (IoU and SSIM
  over the valid programs, see :func:`reward.protocol_scorer.summarise_breakdowns`) and ``eval/loss``
  (teacher-forced loss on the same rows). Only the world's process zero evaluates;
  :func:`evaluator_for` builds it from the run's settings.
"""

from __future__ import annotations

import math
import time

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from configs.sft import SFTConfig
from reward.protocol_scorer import ProtocolScorer, summarise_breakdowns
from rl.sft_setup import TrainingDiverged

_NAMES = {
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "learning_rate": "train/lr",
    "epoch": "train/epoch",
    "train_tokens_per_second": "charts/tokens_per_s",
    "num_input_tokens_seen": "charts/tokens_seen",
}


def format_metrics(step: int, max_steps: int, logs: dict) -> str:
    """``step S/N name=value ...`` with Trainer log keys renamed into namespaces, floats to 4 digits."""
    parts = [f"step {step}/{max_steps}"]
    for key, value in logs.items():
        if key in ("total_flos", "step") or (key == "train_runtime" and "loss" in logs):
            continue
        name = _NAMES.get(key, key)
        parts.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


class MetricsProgress(ProgressCallback):
    """The Trainer's progress bar, with one formatted metrics line per log event."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(format_metrics(state.global_step, state.max_steps, logs))


class StopOnNonFinite(TrainerCallback):
    """Stop SFT at the first log event whose loss or gradient norm is NaN or infinite.

    Once a step's gradient is NaN, clipping spreads it to every weight and every later step
    learns nothing; the Trainer would run on and ``final/`` would hold NaN weights. Raises
    :class:`TrainingDiverged` naming the step (``rl.sft`` prints it as one line; checkpoints
    written before the step stay)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged by step {state.global_step}: {_NAMES[key]} is {value}; "
                    f"final/ not written (checkpoints before that step are kept in {args.output_dir})")


class StepClock(TrainerCallback):
    """Wall-clock time at the end of every optimizer step of this run.

    A short run's mean rate is dominated by start-up (CUDA context, dataloader workers, the
    first kernels): 30 steps of batch 64 on an H100 ran at 1.5 steps/s against 8 steps/s once
    warm, so a budget sized from the mean trains a fifth of what fits. :meth:`steady_rate` is
    the rate over the second half of the steps."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(self.clock())

    def steady_rate(self) -> float | None:
        """Steps per second over the second half of the timed steps (None under 4 steps)."""
        if len(self.times) < 4:
            return None
        half = len(self.times) // 2
        seconds = self.times[-1] - self.times[half - 1]
        return (len(self.times) - half) / seconds if seconds > 0 else None


def write_line(text: str) -> None:
    """Print a line without breaking a live tqdm bar."""
    from tqdm.auto import tqdm

    tqdm.write(text)


class GenerationEval(TrainerCallback):
    """Every ``every`` steps: greedy programs for ``rows``, scored through a RenderPool.

    Parameters
    ----------
    policy : Policy
        The policy whose ``model`` the Trainer trains (sampling reads the live weights).
    rows : list of dict
        Val rows with ``id``, ``image``, ``code`` and ``mesh_path``.
    corpus_dir : str
        Folder the rows' ``mesh_path`` is relative to.
    every : int
        Steps between evaluations (the last step is evaluated too).
    max_new_tokens : int
        Token budget of each program.
    render_workers : int
        RenderPool actors (0: render in this process).
    ray_address : str or None
        The Ray cluster the actors join (None: $RAY_ADDRESS or a local one).
    """

    def __init__(
        self, policy, rows, corpus_dir: str, every: int, max_new_tokens: int, render_workers: int = 0,
        ray_address: str | None = None,
    ):
        self.policy = policy
        self.rows = rows
        self.corpus_dir = corpus_dir
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.render_workers = render_workers
        self.ray_address = ray_address
        self.pool = None
        self.last: dict = {}

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        due = step % self.every == 0 or step >= state.max_steps
        if not (due and state.is_world_process_zero and self.rows):
            return control
        figures = self.evaluate()
        self.last = {**figures, "step": step}
        state.log_history.append(dict(self.last))  # saved in trainer_state.json with the checkpoint
        write_line(format_metrics(step, state.max_steps, figures))
        return control

    def _ensure_pool(self):
        if self.pool is None:
            from corpus.dataset import load_mesh
            from renderer.pool import RenderPool

            self.pool = RenderPool(ProtocolScorer(protocol=False), workers=self.render_workers,
                                   ray_address=self.ray_address)
            for row in self.rows:
                self.pool.add_target(row["id"], *load_mesh(self.corpus_dir, row))
        return self.pool

    @torch.no_grad()
    def _loss(self, images, codes) -> float:
        model = self.policy.model
        was_training = model.training
        model.eval()
        try:
            batch = self.policy.collate(images, codes)
            batch = {k: v.to(self.policy.device) for k, v in batch.items()}
            return float(model(**batch).loss)
        finally:
            model.train(was_training)

    def evaluate(self) -> dict:
        """Generate, render and score one greedy program per row; the ``eval/*`` figures."""
        from renderer.pool import ScoreRequest

        start = time.perf_counter()
        pool = self._ensure_pool()
        images = list(self.rows)
        loss = self._loss(images, [row["code"] for row in self.rows])
        rollout = self.policy.sample(images, n=1, max_new_tokens=self.max_new_tokens, greedy=True)
        scored = pool.score([ScoreRequest(text, row["id"]) for text, row in zip(rollout.texts, self.rows,
                                                                                 strict=True)])
        figures = summarise_breakdowns([s.breakdown for s in scored])
        return {
            "eval/loss": loss,
            "eval/valid_frac": figures["valid_frac"],
            "eval/reward_mean": figures["reward_mean"],
            "eval/iou_mean": figures["iou_mean"],
            "eval/ssim_mean": figures["ssim_mean"],
            "eval/programs": figures["n"],
            "eval/seconds": time.perf_counter() - start,
        }

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def evaluator_for(config: SFTConfig, policy, val, corpus_dir: str) -> GenerationEval | None:
    """The generation-evaluation callback on the first ``eval_samples`` val rows (None when off)."""
    if not config.eval_steps:
        return None
    if len(val) == 0:
        write_line(f"rl.sft: the val split of {corpus_dir} is empty: no generation evaluation")
        return None
    rows = [val[i] for i in range(min(config.eval_samples, len(val)))]
    return GenerationEval(
        policy, rows, corpus_dir, config.eval_steps, config.eval_max_new_tokens, config.render_workers,
        config.ray_address,
    )
