"""A test-only text kind and the method that uses it, in one module and nothing else: two colour
prompts per class, scored as the mean cosine over them. Importing it registers both
(tests/test_text_kinds.py imports it, runs it through `glocal evaluate`, then unregisters)."""

import torch

from glocal.methods.registry import register_method
from glocal.text.kinds import register_text_kind

COLOURS = ("red", "blue")


@register_text_kind("colour_prompts")
def colour_prompts(classnames: list[str], inputs) -> list[list[str]]:
    """Per class: "a {colour} photo of a {c}." for each colour."""
    return [[f"a {colour} photo of a {c}." for colour in COLOURS] for c in classnames]


@register_method("colour_mean", image=("full",), text=("colour_prompts",))
def colour_mean_scores(features, bank, config) -> torch.Tensor:
    """score(c) = mean over the class's colour prompts j of cos(f, t_cj). full (B, D) -> (B, C)."""
    return features.full @ bank.need("colour_prompts").means().T
