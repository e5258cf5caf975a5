"""Where PPO's greedy programs leave a choice SFT was sure of, from an rl.eval folder.

A main job's PPO sometimes makes greedy programs invalid that SFT wrote valid: in the 5cd554a
main job eleven ``test`` pipe bends went from ``rotate_extrude(angle = angle)`` into garbage.
This bench finds where. Each greedy program of a PPO evaluation (by default the invalid ones) is
scored token by token by both policies, with the prompt ``rl.eval`` showed. It reports the first
position where SFT put at least ``--sure`` on another token and under ``--unlikely`` on the
program's own. For that position it gives: the line so far, SFT's token and the program's token,
and the probability of each under SFT and under PPO. PPO moving mass off a token SFT was sure
of, at a state it seldom samples, is what this shows::

    .venv/bin/python bench/greedy_divergence.py --sft runs/demo/sft/final --ppo runs/demo/ppo/final \\
        --eval runs/demo/eval/ppo_test --label main_job

Writes the positions under ``--label`` in ``bench/results/greedy_divergence.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

RESULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "greedy_divergence.json")


def token_probabilities(policy, row: dict, ids: list[int]):
    """``(T, V)`` next-token probabilities of ``policy`` along response ``ids`` after ``row``'s prompt:
    row t is the distribution token t was drawn from."""
    import torch

    with torch.no_grad():
        out = policy.forward([row], torch.tensor([ids]))
    return torch.softmax(out.logits[0].float(), dim=-1)


def divergence(sft, ppo, row: dict, code: str, sure: float, unlikely: float) -> dict | None:
    """The first position of ``code`` where SFT was sure of another token (see the module doc), or
    None when there is none."""
    from policies.tokenizer import encode_code

    ids = encode_code(sft.tokenizer, code)
    if not ids:
        return None
    p_sft, p_ppo = token_probabilities(sft, row, ids), token_probabilities(ppo, row, ids)
    for t, token in enumerate(ids):
        top = int(p_sft[t].argmax())
        if top != token and float(p_sft[t, top]) >= sure and float(p_sft[t, token]) < unlikely:
            text = sft.tokenizer.decode(ids[:t])
            return {"token_index": t, "line_so_far": text.rsplit("\n", 1)[-1], "line": text.count("\n") + 1,
                    "sft_token": sft.tokenizer.decode([top]), "program_token": sft.tokenizer.decode([token]),
                    "sft_token_p": {"sft": float(p_sft[t, top]), "ppo": float(p_ppo[t, top])},
                    "program_token_p": {"sft": float(p_sft[t, token]), "ppo": float(p_ppo[t, token])}}
    return None


def main(argv: list[str] | None = None) -> int:
    from corpus.dataset import load
    from reward.records import read_records
    from rl.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", required=True, help="the SFT checkpoint PPO started from")
    parser.add_argument("--ppo", required=True, help="the PPO checkpoint the evaluation graded")
    parser.add_argument("--eval", required=True, help="rl.eval folder of the PPO checkpoint")
    parser.add_argument("--all", action="store_true", help="every greedy program, not only invalid ones")
    parser.add_argument("--sure", type=float, default=0.9)
    parser.add_argument("--unlikely", type=float, default=0.05)
    parser.add_argument("--label", required=True, help="key of the entry in the results file")
    parser.add_argument("--out", default=RESULT)
    args = parser.parse_args(argv)
    with open(os.path.join(args.eval, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    records = read_records(os.path.join(args.eval, "records.jsonl"))
    greedy = [r for r in records if r.extra["mode"] == "greedy" and (args.all or r.status != "ok")]
    rows = {row["id"]: row for row in load(metrics["corpus_dir"], metrics["split"])}
    sft, ppo = load_checkpoint(args.sft), load_checkpoint(args.ppo)
    found = {}
    for record in greedy:
        found[record.target_id] = {"status": record.status, "divergence": divergence(
            sft, ppo, rows[record.target_id], record.code, args.sure, args.unlikely)}
        print(record.target_id, json.dumps(found[record.target_id]["divergence"]), flush=True)
    entry = {"sft": args.sft, "ppo": args.ppo, "eval": args.eval, "sure": args.sure,
             "unlikely": args.unlikely, "programs": len(greedy),
             "with_divergence": sum(v["divergence"] is not None for v in found.values()), "targets": found}
    add_entry(args.out, args.label, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
