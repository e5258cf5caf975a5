"""bench/pg_signal.py's estimates on synthetic gradients of known mean and spread, and
bench/reward_alignment.py's concordance on hand-made groups."""

from __future__ import annotations

import numpy as np
import pytest

from bench.pg_signal import advantages, signal_figures
from bench.reward_alignment import concordance


def draws(signal_norm: float, noise_sd: float, n: int, dim: int = 4000, seed: int = 0):
    """``n`` gradients ``mean + N(0, noise_sd^2 I)`` with ``|mean| = signal_norm``; the true
    images-for-even is ``dim * noise_sd^2 / signal_norm^2``."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=dim)
    mean *= signal_norm / np.linalg.norm(mean)
    return mean + rng.normal(scale=noise_sd, size=(n, dim)), dim * noise_sd**2 / signal_norm**2


@pytest.mark.parametrize("even", [2.0, 20.0])
def test_signal_and_noise_are_recovered(even):
    grads, truth = draws(signal_norm=1.0, noise_sd=np.sqrt(even / 4000), n=200)
    assert truth == pytest.approx(even)
    figures = signal_figures(grads)
    assert figures["resolved"] and figures["signal"] > 2 * figures["signal_se"]
    assert figures["signal"] == pytest.approx(1.0, rel=0.35)
    assert figures["noise"] == pytest.approx(even, rel=0.1)
    assert figures["images_for_even"] == pytest.approx(even, rel=0.4)
    assert figures["split_half_cos"] == pytest.approx(figures["split_half_cos_expected"], abs=0.1)
    cos = figures["cos_expected"]
    assert cos[4] < cos[16] < cos[64] < 1


def test_pure_noise_is_not_resolved_and_bounds_the_images_needed():
    grads, truth = draws(signal_norm=1e-3, noise_sd=1.0, n=64)
    figures = signal_figures(grads)
    assert not figures["resolved"] and "images_for_even" not in figures
    assert abs(figures["split_half_cos"]) < 0.1
    assert 64 < figures["images_for_even_at_least"] < truth  # a lower bound, above the images used


def test_advantages_are_grpo_and_dr_grpo():
    scores = np.array([0.0, 0.5, 1.0, 0.5])
    centred = scores - scores.mean()
    assert advantages(scores, norm_by_std=False) == pytest.approx(centred, abs=1e-6)
    assert advantages(scores, norm_by_std=True) == pytest.approx(centred / scores.std(ddof=1), abs=1e-4)
    assert advantages(np.full(4, 0.3), norm_by_std=True) == pytest.approx(np.zeros(4))


def test_concordance_counts_pairs_ordered_as_the_protocol():
    group = [{"protocol_iou": 0.9, "good": 3.0, "bad": 1.0},
             {"protocol_iou": 0.5, "good": 2.0, "bad": 2.0},
             {"protocol_iou": 0.1, "good": 1.0, "bad": 3.0},
             {"protocol_iou": 0.12, "good": 0.0, "bad": 0.0},  # within the margin of 0.1: no pair with it
             {"protocol_iou": None, "good": 9.0, "bad": 9.0}]  # invalid: left out
    figures = concordance([group], ["good", "bad"], margin=0.05)
    assert figures["pairs"] == 5  # 0.9-0.5, 0.9-0.1, 0.9-0.12, 0.5-0.1, 0.5-0.12
    assert figures["concordance"]["bad"] < 0.5
    assert figures["spearman_mean"]["bad"] < 0 < figures["spearman_mean"]["good"]
