"""Paired comparison of two methods on the same images: accuracy difference with a bootstrap
95 % interval, and McNemar's exact test on the discordant pairs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glocal.seeding import generator_for


@dataclass(frozen=True)
class PairedComparison:
    images: int
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy_a - accuracy_b
    interval: tuple[float, float]  # bootstrap 95 % percentile interval of the difference
    only_a: int  # images A gets right and B wrong
    only_b: int  # images B gets right and A wrong
    p_value: float  # McNemar, exact two-sided binomial on only_a vs only_b


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min) * 2 for X ~ Binomial(only_a + only_b, 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    # log-space sum: n may be in the tens of thousands
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2 * tail)


def bootstrap_interval(correct_a: torch.Tensor, correct_b: torch.Tensor, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of mean(a) - mean(b) over images resampled with replacement
    (the pairs kept together). Seeded: the same inputs give the same interval."""
    diff = correct_a.double() - correct_b.double()
    n = diff.numel()
    generator = generator_for(seed, "paired-bootstrap", "compare")
    means = torch.empty(resamples, dtype=torch.float64)
    chunk = max(1, 2_000_000 // max(n, 1))  # bound memory: chunk x n indices at a time
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        index = torch.randint(0, n, (count, n), generator=generator)
        means[start : start + count] = diff[index].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return low, high


def compare_paired(correct_a, correct_b, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    a = torch.as_tensor(correct_a, dtype=torch.bool)
    b = torch.as_tensor(correct_b, dtype=torch.bool)
    if a.shape != b.shape or a.ndim != 1 or a.numel() == 0:
        raise ValueError(f"need two equal-length, non-empty vectors of per-image correctness; got {tuple(a.shape)} and {tuple(b.shape)}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    acc_a, acc_b = a.double().mean().item(), b.double().mean().item()
    return PairedComparison(a.numel(), acc_a, acc_b, acc_a - acc_b, bootstrap_interval(a, b, resamples, seed),
                            only_a, only_b, mcnemar_exact(only_a, only_b))
