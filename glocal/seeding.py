"""Deterministic random streams keyed by (run seed, item id, purpose).

Every random draw in glocal comes from a generator made here, so a rerun, a resumed run or a
run split over many workers draws exactly the same crops for the same image, whatever the order
in which images are processed.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, item_id: str, stream: str) -> int:
    """A 63-bit seed from (run seed, image or class id, stream name), stable across processes."""
    digest = hashlib.blake2b(f"{seed}\x1f{item_id}\x1f{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator_for(seed: int, item_id: str, stream: str) -> torch.Generator:
    """A CPU torch.Generator seeded from (seed, item_id, stream)."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, item_id, stream))
    return generator


def randint_inclusive(low: int, high: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Integers uniform in [low, high] (both ends included, as Python's random.randint)."""
    if high < low:
        high = low
    return torch.randint(low, high + 1, (size,), generator=generator)
