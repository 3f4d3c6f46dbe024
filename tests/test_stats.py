"""Paired comparison statistics against hand computations."""

import math

import pytest
import torch

from glocal.results.stats import bootstrap_interval, compare_paired, mcnemar_exact


def test_mcnemar_exact_by_hand():
    # n = 7 discordant pairs, min = 1: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16 / 128
    assert mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # n = 10, min = 0: 2 / 1024
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    # large n stays finite and matches the normal approximation's order of magnitude
    p = mcnemar_exact(4_800, 5_200)
    z = (5_200 - 4_800 - 1) / math.sqrt(10_000)
    assert 0.5 * p < math.erfc(z / math.sqrt(2)) < 2 * p


def test_compare_paired_counts_and_accuracies():
    a = [1, 1, 1, 0, 0, 1, 1, 0]
    b = [1, 0, 0, 0, 1, 1, 0, 0]
    c = compare_paired(a, b, resamples=2_000)
    assert (c.images, c.only_a, c.only_b) == (8, 3, 1)
    assert c.accuracy_a == 5 / 8 and c.accuracy_b == 3 / 8 and c.difference == 2 / 8
    assert c.p_value == pytest.approx(2 * (1 + 4) / 16)
    assert c.interval[0] <= c.difference <= c.interval[1]
    assert compare_paired(a, b, resamples=2_000) == c  # seeded


def test_bootstrap_degenerate_and_shrinking():
    same = torch.tensor([1, 0, 1, 1], dtype=torch.bool)
    assert bootstrap_interval(same, same, 500) == (0.0, 0.0)
    ones, zeros = torch.ones(5, dtype=torch.bool), torch.zeros(5, dtype=torch.bool)
    assert bootstrap_interval(ones, zeros, 500) == (1.0, 1.0)
    g = torch.Generator().manual_seed(0)
    small = torch.rand(50, generator=g) < 0.6
    big = torch.rand(5_000, generator=g) < 0.6
    width = lambda x: (lambda lo_hi: lo_hi[1] - lo_hi[0])(bootstrap_interval(x, torch.zeros_like(x), 1_000))
    assert width(big) < width(small) / 5  # ~ 1/sqrt(n): 100x more images, ~10x narrower


def test_compare_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="equal-length"):
        compare_paired([1, 0], [1])
