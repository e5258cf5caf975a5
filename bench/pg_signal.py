"""How much of a PPO update is signal: the policy gradient's mean against its spread over images.

An update's policy gradient is a mean over the images of its batch. Each image's gradient
``g_i`` (its group of ``k`` sampled programs, their rewards by OpenSCAD, GRPO advantages) is an
independent draw around the expected gradient ``E g``, the direction that raises the expected
reward. From ``N`` images this bench estimates, without bias:

- ``signal = |E g|^2`` (``(|sum g_i|^2 - sum |g_i|^2) / (N (N - 1))``),
- ``noise = tr Var g`` (``(sum |g_i|^2 - N |mean g|^2) / (N - 1)``),
- ``signal_se``: the jackknife standard error of ``signal`` over images; ``resolved`` when
  ``signal > 2 signal_se``;
- ``images_for_even = noise / signal``: the images per update at which the update's expected
  squared norm is half signal, half noise; when the signal is not resolved,
  ``images_for_even_at_least = noise / (signal + 2 signal_se)`` (the most signal the images allow);
- ``cos_expected[m]``: the expected cosine of a batch of ``m`` images' gradient with ``E g``
  (``sqrt(signal / (signal + noise / m))``, at that bound when unresolved), for batch sizes PPO uses;
- ``images_for_even_halves``: that figure from each half of the images alone (its spread);
- ``by_module``: per part of the model (vision tower, connector, token embeddings, each text
  layer, output head): its images for even alone and its share of the noise and of the signal;
- ``split_half_cos``: the measured cosine between the mean gradients of two disjoint halves of
  the images (expected ``signal / (signal + 2 noise / N)``), a check on the estimates.

An image's gradient is that of ``-sum_j A_j sum_t log pi(token_jt)`` over its programs ``j``
(the sampling temperature's log-probs, every trainable weight), for each advantage estimator:
GRPO (``score - group mean`` over the group's std; ``rl.ppo``'s default) and Dr. GRPO (not
divided by the std: ``--grpo_norm_by_std false``). The scale of ``g`` cancels in every ratio.
``--objective sft`` gives the same figures for the SFT loss of the rows' own programs (one
gradient per row): the check that the estimate finds signal where there is some (at
initialisation, and on parts SFT never saw).

Writes (adds an entry to) ``bench/results/pg_signal.json``::

    .venv/bin/python bench/pg_signal.py --checkpoint runs/demo/sft/final --corpus runs/demo/corpus \\
        --reward_from runs/demo/ppo --images 128 --label ppo_at_sft_train
    .venv/bin/python bench/pg_signal.py --objective sft --checkpoint runs/demo/sft/final \
        --corpus runs/demo/corpus --split test --images 114 --label sft_loss_at_sft_test
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "pg_signal.json")
ESTIMATORS = {"grpo": True, "dr_grpo": False}
"""Name -> ``norm_by_std`` of :func:`rl.core_algos.compute_grpo_outcome_advantage`."""
BATCHES = (4, 16, 64)


def image_gradients(policy, row, tokens, mask, temperature: float, weights: dict) -> dict:
    """``{name: (P,) float32}``: the gradient of ``-sum_j A_j sum_t log pi(token_jt)`` over one
    image's programs ``tokens (k, T)`` (``mask`` marks real tokens) for each estimator's advantages
    ``weights[name] (k,)`` (one forward pass)."""
    import torch

    params = [p for p in policy.parameters() if p.requires_grad]
    prompts = policy.prompt_inputs([row] * tokens.shape[0])
    per_program = policy.logprobs_of(prompts, tokens, mask, temperature=temperature).sum(dim=1)
    out, names = {}, list(weights)
    for i, name in enumerate(names):
        loss = -(torch.as_tensor(weights[name], dtype=per_program.dtype) * per_program).sum()
        out[name] = flat_grad(loss, params, retain=i < len(names) - 1)
    return out


def flat_grad(loss, params, retain: bool = False) -> np.ndarray:
    """``d loss / d params`` as one float32 vector (zeros for a weight the loss does not reach)."""
    import torch

    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=retain)
    pieces = [(g if g is not None else torch.zeros_like(p)).reshape(-1)
              for g, p in zip(grads, params, strict=True)]
    return torch.cat(pieces).float().numpy()


def sft_gradient(policy, row) -> np.ndarray:
    """``(P,) float32``: the gradient of the SFT loss of ``row``'s own program (summed over the
    tokens SFT trains on, :meth:`policies.base.Policy.response_ids`), the supervised counterpart
    of :func:`image_gradients`."""
    import torch

    tokens = torch.tensor([policy.response_ids(row["code"])], dtype=torch.long)
    params = [p for p in policy.parameters() if p.requires_grad]
    loss = -policy.logprobs_of(policy.prompt_inputs([row]), tokens).sum()
    return flat_grad(loss, params)


def advantages(scores: np.ndarray, norm_by_std: bool) -> np.ndarray:
    """One group's GRPO / Dr. GRPO advantages (rl.core_algos, one token per program)."""
    import torch

    from rl.core_algos import compute_grpo_outcome_advantage

    mask = torch.ones(len(scores), 1, dtype=torch.bool)
    out = compute_grpo_outcome_advantage(torch.tensor(scores, dtype=torch.float32), [0] * len(scores), mask,
                                         norm_by_std=norm_by_std)
    return out[:, 0].double().numpy()


def module_slices(policy) -> dict[str, np.ndarray]:
    """Which entries of :func:`flat_grad`'s vector belong to each part of the model: the vision tower, the
    connector, the token embeddings, each text layer, the output head (by parameter name)."""
    spans: dict[str, list[np.ndarray]] = {}
    start = 0
    for name, param in policy.named_parameters():
        if not param.requires_grad:
            continue
        if "vision" in name:
            part = "vision"
        elif "connector" in name:
            part = "connector"
        elif "embed_tokens" in name:
            part = "embed_tokens"
        elif ".layers." in name:
            part = "text_layer_" + name.split(".layers.")[1].split(".")[0]
        elif "lm_head" in name:
            part = "lm_head"
        else:
            part = "other"
        spans.setdefault(part, []).append(np.arange(start, start + param.numel()))
        start += param.numel()
    return {part: np.concatenate(pieces) for part, pieces in spans.items()}


def by_module(per_image: np.ndarray, slices: dict[str, np.ndarray]) -> dict:
    """Signal, noise and images for even of each part of the model alone."""
    out = {}
    for part, where in slices.items():
        figures = signal_figures(per_image[:, where])
        if figures["noise"] <= 0:
            continue  # a part the loss does not reach (the value head)
        signal = max(figures["signal"], 0.0)
        out[part] = {"resolved": figures["resolved"], "images_for_even": half_figure_of(figures),
                     "signal": signal, "noise": figures["noise"]}
    noise, signal = sum(v["noise"] for v in out.values()), sum(v["signal"] for v in out.values())
    for v in out.values():  # each part's share of the whole gradient's noise and (resolved or not) signal
        v["noise_share"] = round(v.pop("noise") / noise, 4)
        v["signal_share"] = round(v.pop("signal") / signal, 4) if signal > 0 else None
    return out


def signal_figures(per_image: np.ndarray) -> dict:
    """The figures of the module docstring from ``(N, P)`` per-image gradients (N >= 4)."""
    per_image = np.asarray(per_image, dtype=np.float64)
    n = len(per_image)
    total = per_image.sum(axis=0)
    own = np.einsum("ij,ij->i", per_image, per_image)  # |g_i|^2
    sq, grand = float(own.sum()), float(total @ total)
    signal = (grand - sq) / (n * (n - 1))
    noise = (sq - grand / n) / (n - 1)
    # jackknife standard error of the signal estimate (leave one image out)
    cross = per_image @ total
    loo = ((grand - 2 * cross + own) - (sq - own)) / ((n - 1) * (n - 2))
    signal_se = float(np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum()))
    half = n // 2
    a, b = per_image[:half].mean(axis=0), per_image[half : 2 * half].mean(axis=0)
    split = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
    out = {"signal": signal, "signal_se": signal_se, "noise": noise, "split_half_cos": round(split, 4),
           "split_half_cos_expected": round(max(signal, 0) / (max(signal, 0) + 2 * noise / n), 4),
           "resolved": signal > 2 * signal_se}
    # with the signal resolved, the point estimate; else the most signal the images allow
    # (estimate + 2 SE), which bounds the images needed from below
    bound = signal if out["resolved"] else max(signal, 0.0) + 2 * signal_se
    out["images_for_even" if out["resolved"] else "images_for_even_at_least"] = round(noise / bound, 1)
    out["cos_expected"] = {m: round(float(np.sqrt(bound / (bound + noise / m))), 4) for m in BATCHES}
    return out


def gradient_figures(grads: np.ndarray, policy) -> dict:
    """:func:`signal_figures` of ``(N, P)`` gradients, with :func:`by_module` and the figure of
    each half of the images alone (how stable the estimate is)."""
    figures = signal_figures(grads)
    figures["by_module"] = by_module(grads, module_slices(policy))
    half = len(grads) // 2
    figures["images_for_even_halves"] = [half_figure_of(signal_figures(part))
                                         for part in (grads[:half], grads[half : 2 * half])]
    return figures


def half_figure_of(figures: dict) -> str:
    """``images_for_even`` of :func:`signal_figures`'s result, as text: ``"120.5"`` or ``">= 800.0"``."""
    if figures["resolved"]:
        return str(figures["images_for_even"])
    return f">= {figures['images_for_even_at_least']}"


def measure(args) -> dict:
    import torch

    from configs.reward import resolve
    from corpus.dataset import load_mesh
    from policies import load_policy
    from policies.inputs import input_columns
    from renderer.pool import RenderPool, ScoreRequest
    from reward.score import Scorer
    from rl.checkpoint import load_split_rows

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    weights, source = resolve(args.reward_from, args.checkpoint)
    policy = load_policy(args.checkpoint)
    columns = ["id", "mesh_path", "code", *input_columns(policy.config)]
    rows = load_split_rows(args.corpus, args.split, columns)
    chosen = random.Random(args.seed).sample(range(len(rows)), min(args.images, len(rows)))
    if args.objective == "sft":
        return measure_sft(args, policy, [rows[i] for i in chosen])
    pool = RenderPool(Scorer(weights, threads=1), workers=args.workers)
    per_image = {name: [] for name in ESTIMATORS}
    scores_all, started = [], time.perf_counter()
    phase = dict.fromkeys(("sample", "score", "gradient"), 0.0)
    for start in range(0, len(chosen), args.chunk):
        batch = [rows[i] for i in chosen[start : start + args.chunk]]
        for row in batch:
            pool.add_target(row["id"], *load_mesh(args.corpus, row))
        began = time.perf_counter()
        rollout = policy.sample(batch, n=args.k, temperature=args.temperature)
        phase["sample"] += time.perf_counter() - began
        began = time.perf_counter()
        targets = [row["id"] for row in batch for _ in range(args.k)]
        scored = pool.score([ScoreRequest(text, t) for text, t in zip(rollout.texts, targets, strict=True)])
        phase["score"] += time.perf_counter() - began
        began = time.perf_counter()
        for b, row in enumerate(batch):
            scores = np.array([s.total for s in scored[b * args.k : (b + 1) * args.k]])
            scores_all.append(scores)
            weights_of = {name: advantages(scores, norm) for name, norm in ESTIMATORS.items()}
            rows_of_image = slice(b * args.k, (b + 1) * args.k)
            grads = image_gradients(policy, row, rollout.tokens[rows_of_image], rollout.mask[rows_of_image],
                                    args.temperature, weights_of)
            for name, grad in grads.items():
                per_image[name].append(grad)
        phase["gradient"] += time.perf_counter() - began
        seconds = time.perf_counter() - started
        print(f"pg_signal: {len(scores_all)}/{len(chosen)} images, {seconds:.0f} s", flush=True)
    scores = np.stack(scores_all)
    entry = {"objective": "ppo", "checkpoint": args.checkpoint, "corpus": args.corpus, "split": args.split,
             "images": len(chosen),
             "k": args.k, "temperature": args.temperature, "reward": source, "seed": args.seed,
             "parameters": int(sum(p.numel() for p in policy.parameters() if p.requires_grad)),
             "reward_mean": round(float(scores.mean()), 4),
             "groups_tied": int(sum(np.ptp(s) == 0 for s in scores)),
             "group_reward_std_mean": round(float(scores.std(axis=1, ddof=1).mean()), 4)}
    for name in ESTIMATORS:
        entry[name] = gradient_figures(np.stack(per_image[name]), policy)
    entry["seconds"] = round(time.perf_counter() - started, 1)
    entry["phase_seconds"] = {name: round(value, 1) for name, value in phase.items()}
    return entry


def measure_sft(args, policy, rows) -> dict:
    """The same figures for the SFT loss of the rows' own programs (one gradient per row)."""
    started = time.perf_counter()
    figures = gradient_figures(np.stack([sft_gradient(policy, row) for row in rows]), policy)
    return {"objective": "sft", "checkpoint": args.checkpoint, "corpus": args.corpus, "split": args.split,
            "images": len(rows), "seed": args.seed, "sft": figures,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--reward_from", default=None, help="rl.eval's --reward_from (a PPO run folder)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--chunk", type=int, default=4, help="images sampled together (as rl.ppo's batch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="render actors (0: in this process)")
    parser.add_argument("--objective", choices=("ppo", "sft"), default="ppo",
                        help="ppo: sampled programs and GRPO advantages; sft: the rows' own programs' loss")
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    if args.images < 4 or args.k < 2:
        raise SystemExit("pg_signal: need --images >= 4 and --k >= 2")
    add_entry(args.out, args.label, measure(args))


if __name__ == "__main__":
    main()
