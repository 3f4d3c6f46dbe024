"""The scoring memory budget: how many bytes one method's temporaries may take at a time.

Scores are (images x classes); some methods compare every crop with every sentence of every
class, a tensor of (images x crops x classes x sentences) that would be gigabytes for a single
ImageNet shard. Such methods work in chunks sized from this budget, and say before computing
anything when even the smallest chunk cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_BYTES = 4
# Default scoring budget per method: far below a worker's memory, large enough that chunks stay
# big enough for the matrix products to run near their peak (see benchmarks/score.py).
DEFAULT_SCORE_MEMORY = 256 * 2**20


# Crops (and windows) per image, over every kind a method scores: the papers use up to ~200 (WCA's
# pool of 100, ABS's 60 + 60, LGCA's 60 + 3 x 20); a shard's features, gathered in float32 on the
# device, grow with it (256 images x 2,048 crops x D=768 is 1.5 GiB), so more is refused before
# any compute.
MAX_CROPS_PER_IMAGE = 2048


class BudgetError(ValueError):
    """A request whose smallest chunk does not fit the scoring memory budget."""


@dataclass(frozen=True)
class ScoreShape:
    """What decides a method's temporaries: classes C, sentences per class M (the longest list of
    each text kind the bank holds), crops per image of each image feature kind."""

    classes: int
    sentences: dict[str, int]  # text kind -> longest per-class list
    crops: dict[str, int]  # image feature kind -> crops per image (full = 1)


def parse_memory(text: str | int | None) -> int:
    """'512M', '2G', '300000000' (bytes) -> bytes; None -> the default."""
    if text is None:
        return DEFAULT_SCORE_MEMORY
    if isinstance(text, int):
        value = text
    else:
        units = {"k": 2**10, "m": 2**20, "g": 2**30}
        raw = text.strip().lower().removesuffix("b").removesuffix("i")
        try:
            value = int(float(raw[:-1]) * units[raw[-1]]) if raw and raw[-1] in units else int(raw)
        except (ValueError, IndexError):
            raise ValueError(f"--score-memory takes bytes or a size such as 512M or 2G, not {text!r}") from None
    if value <= 0:
        raise ValueError(f"--score-memory must be positive, not {text!r}")
    return value


def human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def require(method: str, needed: int, memory: int) -> None:
    """Raise before compute when ``needed`` bytes (the smallest chunk) exceed ``memory``."""
    if needed > memory:
        raise BudgetError(f"{method}: its smallest scoring chunk needs {human(needed)} but the scoring memory budget is "
                          f"{human(memory)}; raise --score-memory to at least {human(needed)} or score fewer classes/crops")


def require_crops(method: str, crops: int, classes: int, memory: int) -> None:
    """Every crop-based method holds, for one image at least, each crop's similarity to each
    class (crops x classes floats): refused before compute when that exceeds ``memory``, or when
    the crops exceed ``MAX_CROPS_PER_IMAGE``."""
    if crops > MAX_CROPS_PER_IMAGE:
        raise BudgetError(f"{method}: {crops:,} crops per image; glocal encodes at most {MAX_CROPS_PER_IMAGE:,} per image "
                          f"(a shard's features grow with them): lower --n-crops")
    require(method, crops * classes * FLOAT_BYTES, memory)
