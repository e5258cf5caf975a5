"""SFT step time in fp32 against bf16 autocast on this CPU, interleaved so both see the same load.

``rl.sft --bf16 true`` on a CPU trains under ``torch.autocast("cpu", torch.bfloat16)`` (the
Trainer's CPU path): weights and optimizer stay fp32, matrix products run in bf16. Whether that
is faster depends on the CPU: with bf16 instructions (``avx512_bf16``, ``amx_bf16``) it is, without
them it is emulated. This bench times whole optimizer steps (forward, backward, AdamW) of the
main job's model and collator on real corpus rows, alternating blocks of fp32 and bf16 steps
so other work on the machine slows both alike, and writes the ratio::

    .venv/bin/python bench/sft_precision.py --corpus_dir runs/demo/corpus --threads 2

Quality at the same steps is a different question, answered by a whole SFT run with and
without ``--bf16`` (figures in the README, "Main job").
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "sft_precision.json")


def timed_steps(model, optimizer, batches, bf16: bool) -> float:
    """Seconds for one optimizer step per batch, under bf16 autocast or not."""
    import torch

    started = time.perf_counter()
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def measure(corpus_dir: str, config_path: str, threads: int, blocks: int, block_steps: int) -> dict:
    import torch

    from configs.loader import load
    from configs.sft import SFTConfig
    from policies import build_policy
    from rl.runtime import bf16_native, set_threads
    from rl.sft_setup import load_splits
    from rl.sft_trainer import training_model

    set_threads(threads)
    config = load(SFTConfig, config_path)
    train, _ = load_splits(corpus_dir, config.policy)
    policy = build_policy(config.policy, texts=list(train["code"]))
    model, collator = training_model(config, policy, train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size = config.per_device_batch_size
    needed = (blocks + 1) * block_steps
    batches = [collator([train[(i * size + j) % len(train)] for j in range(size)]) for i in range(needed)]
    timed_steps(model, optimizer, batches[:block_steps], False)  # warm-up, both paths
    timed_steps(model, optimizer, batches[:block_steps], True)
    seconds = {"fp32": 0.0, "bf16": 0.0}
    for block in range(1, blocks + 1):
        chunk = batches[block * block_steps:(block + 1) * block_steps]
        for name in ("fp32", "bf16"):
            seconds[name] += timed_steps(model, optimizer, chunk, name == "bf16")
    steps = blocks * block_steps
    return {
        "corpus_dir": corpus_dir,
        "config": config_path,
        "threads": threads,
        "batch_size": size,
        "steps_each": steps,
        "cpu_bf16_native": bf16_native(),
        "fp32_s_per_step": seconds["fp32"] / steps,
        "bf16_s_per_step": seconds["bf16"] / steps,
        "bf16_speedup": seconds["fp32"] / seconds["bf16"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus_dir", default="runs/demo/corpus")
    parser.add_argument("--config", default="configs/sft.yaml")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks of each precision")
    parser.add_argument("--block_steps", type=int, default=10)
    parser.add_argument("--label", default=None, help="key of the entry (default: cpu_<threads>t)")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    entry = measure(args.corpus_dir, args.config, args.threads, args.blocks, args.block_steps)
    add_entry(args.out, args.label or f"cpu_{args.threads}t", entry)


if __name__ == "__main__":
    main()
