"""One learner's place among data-parallel learners, for SFT and PPO alike.

The torch process group is set up by Ray Train (:mod:`rl.ray_harness`); this module only uses
it: sharding a batch, averaging gradients and figures, seeding each learner's iteration, and a
parameter checksum that is equal on replicas that stayed in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class World:
    """This learner's place among ``size`` data-parallel learners (torch.distributed is set up)."""

    rank: int
    size: int

    @property
    def lead(self) -> bool:
        """Rank 0 writes the run's files and prints its lines."""
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This learner's share of ``items`` (every ``size``-th from ``rank``)."""
        return items[self.rank :: self.size]

    def average_gradients(self, params) -> None:
        """All-reduce each parameter's gradient to the mean over learners."""
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(self.size)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over learners of each number (same keys on every learner)."""
        import torch.distributed as dist

        keys = sorted(values)
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return dict(zip(keys, (tensor / self.size).tolist(), strict=True))


def iteration_seed(seed: int, iteration: int, rank: int) -> int:
    """The torch / numpy / random seed of one learner's iteration."""
    return (seed * 1_000_003 + iteration * 1_009 + rank * 7_919) % (2**31)


def parameter_checksum(model: torch.nn.Module) -> float:
    """Sum of every parameter (float64): equal on data-parallel replicas that stayed in sync."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum().item() for p in model.parameters()))
