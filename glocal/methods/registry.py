"""The method registry: one entry per method name, no if/elif dispatch anywhere. (Lookups live in
``glocal.methods``, which imports every method module first: this module imports none of them.)

A method is a pure function ``fn(features, bank, config) -> (B, C) scores`` registered with the
image features and text embeddings it needs, and the dataclass of its configuration. The
extractor reads ``image_needs`` to compute only what the requested methods use. A method whose
temporaries would grow with (images x classes x sentences) also registers a ``footprint`` (the
bytes of its smallest chunk) and takes ``memory=``, the budget its chunks stay within; callers
go through ``MethodSpec.score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from glocal.methods.budget import DEFAULT_SCORE_MEMORY, ScoreShape, require, require_crops
from glocal.kinds import image_kinds, kinds_for
from glocal.text.kinds import text_kinds


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable
    image_needs: frozenset[str]
    text_needs: frozenset[str]
    config_cls: type | None = None
    summary: str = field(default="")
    # Narrows image_needs for a given config (e.g. ABS with Ffs off needs no feature windows).
    needs_for_config: Callable | None = None
    # (config, ScoreShape) -> bytes of the method's smallest scoring chunk. A method with a
    # footprint chunks its work within a memory budget and takes it as ``memory=``; one without
    # holds nothing larger than its (images, classes) scores.
    footprint: Callable | None = None
    # config -> how many draws the method is scored over (an evaluation protocol that resamples,
    # e.g. WCA's official 20 draws); a method with draws takes ``draw=`` (0-based) and is scored
    # once per draw, its accuracy the mean (± std) over them.
    draws: Callable | None = None

    def score(self, features, bank, config, memory: int = DEFAULT_SCORE_MEMORY, draw: int = 0):
        """(B, C) scores (of draw ``draw``) with temporaries within ``memory`` bytes."""
        extra = ({"memory": memory} if self.footprint is not None else {}) | ({"draw": draw} if self.draws is not None else {})
        return self.fn(features, bank, config, **extra)

    def draws_for(self, config) -> int:
        return self.draws(config) if self.draws is not None else 1

    def check_memory(self, config, shape: ScoreShape, memory: int) -> None:
        """Raise ``BudgetError`` (before compute) when the smallest chunk exceeds ``memory``:
        every method's crops are counted (one image's crop-class similarities), then its own
        footprint when it has one."""
        crops = self.crops_per_image(config)
        if self.footprint is not None:  # its own count (it includes the crops), after the cap on crops
            require_crops(self.name, crops, 0, memory)
            require(self.name, self.footprint(config, shape), memory)
        else:
            require_crops(self.name, crops, shape.classes, memory)

    def crops_per_image(self, config) -> int:
        """Crops and windows per image over the crop kinds this config scores."""
        return sum(kind.crops_per_image(config) for kind in kinds_for(self.image_needs_for(config)))

    def image_needs_for(self, config) -> frozenset[str]:
        return frozenset(self.needs_for_config(config)) if self.needs_for_config else self.image_needs


# Filled by the @register_method decorators as glocal.methods imports each method module; look
# methods up through glocal.methods (get_method, method_names, ...), which has imported them all.
METHODS: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    *,
    image: tuple[str, ...],
    text: tuple[str, ...],
    config: type | None = None,
    needs_for_config: Callable | None = None,
    footprint: Callable | None = None,
    draws: Callable | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as method ``name``."""
    unknown = (set(image) - image_kinds()) | (set(text) - text_kinds())
    if unknown:
        raise ValueError(f"method {name!r} declares unknown needs {sorted(unknown)}")

    def wrap(fn: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        # the docstring's first paragraph, whole (`glocal methods` prints it)
        summary = " ".join(line.strip() for line in (fn.__doc__ or "").strip().split("\n\n")[0].splitlines())
        METHODS[name] = MethodSpec(name, fn, frozenset(image), frozenset(text), config, summary, needs_for_config, footprint, draws)
        return fn

    return wrap
