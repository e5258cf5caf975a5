"""The SFT training run itself: one ``transformers.Trainer`` around ``policy.model``, resumable.

Used by ``rl.sft`` in one process and by each Ray Train worker (:mod:`rl.sft_dist`), which
is why it takes the world it runs in as given (``transformers`` reads ``RANK`` /
``WORLD_SIZE`` and uses the process group Ray set up)::

    trainer = build_trainer(config, policy, train, run_dir, callbacks)
    figures = train(trainer, run_dir)      # resumes from the last complete checkpoint-N

The loss is the policy's own (:class:`policies.SFTCollator`: code tokens and eos only), plus,
when the corpus has several families and ``image_aux_weight > 0``, the auxiliary image
objective of :mod:`rl.sft_aux` (the Trainer then trains an :class:`~rl.sft_aux.ImageAuxModel`
around ``policy.model``; the saved policy never holds its head).
"""

from __future__ import annotations

import json
import os
import re
import time

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from configs.sft import SFTConfig
from policies import SFTCollator
from rl.sft_aux import FamilyCollator, ImageAuxModel, ParamTable, corpus_families
from rl.sft_callbacks import MetricsProgress, StepClock, StopOnNonFinite, write_line

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(run_dir: str) -> str | None:
    """The ``checkpoint-N`` with the highest N whose ``trainer_state.json`` was written (the
    Trainer writes it last, so a run killed while saving never resumes from a half checkpoint)."""
    if not os.path.isdir(run_dir):
        return None
    found = []
    for name in os.listdir(run_dir):
        match = _CHECKPOINT.match(name)
        if match and os.path.exists(os.path.join(run_dir, name, "trainer_state.json")):
            found.append((int(match.group(1)), os.path.join(run_dir, name)))
    return max(found)[1] if found else None


def training_arguments(config: SFTConfig, run_dir: str) -> TrainingArguments:
    """The Trainer's arguments for ``config``; checkpoints go to ``run_dir``."""
    return TrainingArguments(
        output_dir=run_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        length_column_name="length",
        bf16=config.bf16,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="no",  # the generation evaluation is a callback (rl.sft_callbacks.GenerationEval)
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,  # the collator needs the image and code columns
        dataloader_num_workers=config.dataloader_workers,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=False,
    )


class SFTTrainer(Trainer):
    """``transformers.Trainer`` whose log lines also carry the image objective's loss and accuracy."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and isinstance(self.model, ImageAuxModel):
            logs.update(self.model.pop_stats())
        super().log(logs, start_time)


def training_model(config: SFTConfig, policy, train_dataset):
    """``(model, collator)`` the Trainer trains: ``policy.model`` with the SFT collator, or the
    :class:`~rl.sft_aux.ImageAuxModel` around it when the image objective is on (a tiny policy,
    weight > 0 and at least two families in ``train_dataset``; a pretrained vision encoder
    already tells images apart)."""
    collator = SFTCollator(policy, config.size_dropout, config.seed, config.picture_fraction,
                           config.exemplar_self)
    families = corpus_families(train_dataset)
    if policy.kind != "tiny" or config.image_aux_weight <= 0 or len(families) < 2:
        return policy.model, collator
    params = None
    if config.image_param_weight > 0 and {"params", "extents"} <= set(train_dataset.column_names):
        params = ParamTable(train_dataset)
    model = ImageAuxModel(policy.model, families, config.image_aux_weight,
                          len(params.keys) if params else 0, config.image_param_weight)
    extra = FamilyCollator(collator, families, train_dataset, config.image_aux_extra, config.seed, params)
    return model, extra


def build_trainer(config: SFTConfig, policy, train_dataset, run_dir: str, callbacks=()) -> Trainer:
    """A Trainer over ``policy.model`` (see :func:`training_model`), our metrics line and ``callbacks``."""
    args = training_arguments(config, run_dir)
    policy.to(args.device)  # the value head too: sampling reads the device from it
    model, collator = training_model(config, policy, train_dataset)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=policy.tokenizer,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(MetricsProgress())
    trainer.add_callback(StopOnNonFinite())
    trainer.add_callback(StepClock())
    return trainer


def _saved_state(checkpoint: str | None) -> dict:
    """The ``trainer_state.json`` of a checkpoint ({} for None)."""
    if checkpoint is None:
        return {}
    with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _last_eval(history: list[dict]) -> dict:
    """The last generation-evaluation entry of a Trainer's log history ({} when none)."""
    for entry in reversed(history):
        if "eval/valid_frac" in entry:
            return dict(entry)
    return {}


def _last_logged(history: list[dict], key: str):
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return None


def _steady_rate(trainer: Trainer) -> float | None:
    clocks = [c for c in trainer.callback_handler.callbacks if isinstance(c, StepClock)]
    return clocks[0].steady_rate() if clocks else None


def train(trainer: Trainer, run_dir: str) -> dict:
    """Train, resuming from the last complete checkpoint in ``run_dir``; figures of this run.

    Returns ``resumed_from`` (a checkpoint path or None), ``start_step``, ``global_step``,
    ``steps_this_run``, ``train_seconds``, ``examples_per_s`` and ``tokens_per_s`` (non-padding
    prompt + image + code tokens, all processes, this run only), ``steady_steps_per_s`` (the
    second half of this run's steps, see :class:`~rl.sft_callbacks.StepClock`), ``train_loss_last`` (the last
    logged loss), ``train_loss_mean`` (mean over this run's steps) and ``eval`` (the last
    :class:`rl.sft_callbacks.GenerationEval` entry of the log history). A checkpoint already at
    ``max_steps`` is loaded and not trained further (the Trainer would take one more step).
    """
    resume = last_checkpoint(run_dir)
    saved = _saved_state(resume)
    start_step, start_tokens = saved.get("global_step", 0), saved.get("num_input_tokens_seen", 0)
    args = trainer.args
    figures = {"resumed_from": resume, "start_step": start_step, "world_size": args.world_size}
    if resume and start_step >= args.max_steps:
        trainer._load_from_checkpoint(resume)
        write_line(f"rl.sft: {resume} is at step {start_step}, max_steps {args.max_steps}: nothing to train")
        return {
            **figures,
            "global_step": start_step,
            "steps_this_run": 0,
            "train_seconds": 0.0,
            "examples_per_s": None,
            "tokens_per_s": None,
            "steady_steps_per_s": None,
            "train_loss_last": _last_logged(saved.get("log_history", []), "loss"),
            "train_loss_mean": None,
            "eval": _last_eval(saved.get("log_history", [])),
        }
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    state = trainer.state
    steps = state.global_step - start_step
    examples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    tokens = state.num_input_tokens_seen - start_tokens
    return {
        **figures,
        "global_step": state.global_step,
        "steps_this_run": steps,
        "train_seconds": seconds,
        "examples_per_s": examples / seconds if seconds > 0 else None,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "steady_steps_per_s": _steady_rate(trainer),
        "train_loss_last": _last_logged(state.log_history, "loss"),
        "train_loss_mean": output.training_loss if steps else None,
        "eval": _last_eval(state.log_history),
    }

