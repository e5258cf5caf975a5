"""Process-wide settings every ``rl`` command makes first: torch threads and quiet libraries."""

from __future__ import annotations


def set_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads (1 is fastest when other jobs share 2 cores)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def quiet_libraries() -> None:
    """Turn off the per-file progress bars of ``datasets`` and of ``save_pretrained`` (the
    Trainer's own progress bar is kept)."""
    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.disable_progress_bar()
