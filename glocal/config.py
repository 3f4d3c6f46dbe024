"""Typed method configurations and named presets.

Numbers come from ``docs/methods.md`` (the papers and their official code). A preset is a named,
frozen configuration; ``config_hash`` keys stored artifacts by content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ABSConfig:
    """Attention-Based Selection (Cai et al., ICML 2025)."""

    n_crops: int = 60  # N: raw-space crops, and as many feature-space windows
    alpha: float = 0.5  # raw crop side drawn in [int(alpha*W), int(beta*W)] (height likewise)
    beta: float = 0.9
    top_k: int = 20  # centres are drawn among the k most attended patches
    centre_temperature: float = 0.03  # softmax(values / T) over those k patches
    n_descriptions: int = 50  # M: first M CuPL sentences per class
    match_temperature: float = 0.03  # soft matching: cos / T, softmax over all (class, sentence)
    # "paper": feature windows share the raw boxes' centre and size, mapped through CLIP's centre
    # crop. "code": windows drawn independently (second multinomial, square side), mapped from the
    # attention grid as if it covered the centre crop -- misaligned on non-square images, as the
    # official code is.
    pairing: Literal["paper", "code"] = "paper"
    window_min: float = 0.6  # code pairing: window side in [int(0.6*g), int(0.9*g)]
    window_max: float = 0.9
    use_raw: bool = True  # Frs: raw-space crops
    use_feature: bool = True  # Ffs: feature-space windows
    soft_matching: bool = True  # off: mean over crops of mean cos over sentences (CuPL-style)
    attention: str = "dino"  # attention source: dino | clip | uniform (random centres)
    raw_augment: str = "crop"  # crop | mask | highlight | red_circle
    feature_augment: str = "crop"  # crop | mask | highlight_tokens | highlight_attention
    layer: int | None = None  # 1-based block whose input is cropped (paper Table 7); None = last
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1, "n_crops must be >= 1")
        _check(0 < self.alpha <= self.beta <= 1, "need 0 < alpha <= beta <= 1")
        _check(self.top_k >= 1, "top_k must be >= 1")
        _check(self.use_raw or self.use_feature, "ABS needs use_raw or use_feature (or both)")
        _check(self.pairing in ("paper", "code"), "pairing must be 'paper' or 'code'")
        _check(0 < self.window_min <= self.window_max <= 1, "need 0 < window_min <= window_max <= 1")
        _check(self.n_descriptions >= 1, "n_descriptions must be >= 1")


@dataclass(frozen=True)
class WCAConfig:
    """Weighted visual-text cross alignment (Li et al., ICML 2024), as its code does it."""

    n_crops: int = 60  # 60 for ImageNet, 100 otherwise in the official runs
    min_scale: float = 0.1  # crop side = int(U(min_scale, max_scale) * min(H, W))
    max_scale: float = 0.9
    crop_weight_scale: float = math.exp(4)  # w_i = softmax(scale * cos(f_full, f_i))
    description_weight_scale: float = math.exp(2)  # v_j = softmax(scale * cos(t_j, t_prompt))
    # "code": cos(normalise(sum w f), normalise(sum v t)); "paper": sum_i sum_j w_i v_j cos(f_i, t_j)
    form: Literal["code", "paper"] = "code"
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1, "n_crops must be >= 1")
        _check(0 < self.min_scale <= self.max_scale <= 1, "need 0 < min_scale <= max_scale <= 1")
        _check(self.form in ("code", "paper"), "form must be 'code' or 'paper'")


@dataclass(frozen=True)
class LGCAConfig:
    """Local crops, then progressive expansion of the most salient (glocal's documented rule)."""

    n_crops: int = 60  # N0 local crops at step 0 (WCA geometry)
    min_scale: float = 0.1
    max_scale: float = 0.5  # local crops: small by design, expansion adds the context
    steps: int = 3  # T expansion steps
    top_k: int = 20  # K most salient boxes grown per step
    growth: float = 1.5  # gamma: side multiplier per step, about the box centre, clamped
    step_weights: tuple[float, ...] | None = None  # lambda for (full, step 0..T); None = uniform
    crop_weight_scale: float = math.exp(4)
    description_weight_scale: float = math.exp(2)
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1 and self.steps >= 0 and self.top_k >= 1, "need N0>=1, T>=0, K>=1")
        _check(
            self.top_k * self.steps <= self.n_crops,
            f"K*T = {self.top_k * self.steps} exceeds N0 = {self.n_crops}: the expansion must stay"
            " within 2*N0 encodes (the paper's complexity claim); lower top_k or steps",
        )
        _check(self.growth > 1, "growth must be > 1")
        _check(0 < self.min_scale <= self.max_scale <= 1, "need 0 < min_scale <= max_scale <= 1")
        if self.step_weights is not None:
            _check(
                len(self.step_weights) == self.steps + 2,
                f"step_weights needs {self.steps + 2} values (full image, then steps 0..T)",
            )


@dataclass(frozen=True)
class NoConfig:
    """Methods without parameters (CLIP, CLIP-E, CLIP-D, Waffle, CuPL)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


PRESETS: dict[str, object] = {
    "abs-paper": ABSConfig(n_crops=60, alpha=0.5, beta=0.9, top_k=20, n_descriptions=50, pairing="paper"),
    "abs-code": ABSConfig(n_crops=50, alpha=0.6, beta=0.9, top_k=20, n_descriptions=50, pairing="code"),
    "abs-frs-only": ABSConfig(use_feature=False),
    "abs-ffs-only": ABSConfig(use_raw=False),
    "abs-no-softm": ABSConfig(soft_matching=False),
    "wca-code": WCAConfig(form="code"),
    "wca-paper": WCAConfig(form="paper"),
    "lgca": LGCAConfig(),
}
# The preset a method uses when none is named.
DEFAULT_PRESET = {"abs": "abs-paper", "wca": "wca-code", "lgca": "lgca"}


def get_preset(name: str):
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def config_for(method_name: str, config_cls: type | None, preset: str | None = None, **overrides):
    """The configuration a method runs with: its default preset (or ``preset``), then overrides."""
    if config_cls is None:
        return NoConfig()
    name = preset or DEFAULT_PRESET.get(method_name)
    base = get_preset(name) if name else config_cls()
    if not isinstance(base, config_cls):
        raise ValueError(f"preset {name!r} is a {type(base).__name__}, method {method_name!r} needs {config_cls.__name__}")
    return dataclasses.replace(base, **overrides) if overrides else base


# Fields only the scoring step reads: changing one never changes an image feature, so stored
# features are reused (sweeps over them, ablations of the Frs/Ffs/Soft-M switches, re-scores).
# The Frs/Ffs switches pick which features scoring uses; the crop plans do not depend on them.
SCORING_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "ABSConfig": frozenset({"n_descriptions", "match_temperature", "soft_matching", "use_raw", "use_feature"}),
    "WCAConfig": frozenset({"crop_weight_scale", "description_weight_scale", "form"}),
    "LGCAConfig": frozenset({"step_weights", "crop_weight_scale", "description_weight_scale"}),
}


def feature_fields(config) -> dict:
    """The part of a config that decides image features (its dict without scoring-only fields)."""
    skip = SCORING_ONLY_FIELDS.get(type(config).__name__, frozenset())
    return {k: v for k, v in config_to_dict(config).items() if k not in skip}


def parse_field_value(config_cls: type, name: str, text: str):
    """A command-line value for field ``name`` of ``config_cls``: JSON where it parses (numbers,
    true/false, null), else the string; ints widen to float for float fields."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        raise ValueError(f"{config_cls.__name__} has no field {name!r}; fields: {', '.join(fields)}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    default = fields[name].default
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"{name} takes true or false, not {text!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, list):
        value = tuple(value)
    expected = type(default) if default is not None else None
    if expected in (int, float, str) and not isinstance(value, expected) and not (value is None and "None" in str(fields[name].type)):
        raise ValueError(f"{name} takes a {expected.__name__}, not {text!r}")
    return value


def config_to_dict(config) -> dict:
    return {"type": type(config).__name__, **dataclasses.asdict(config)}


def config_hash(config) -> str:
    """Content hash of a configuration: equal configs, equal hash, whatever preset named them."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def content_key(*parts) -> str:
    """A short content hash of JSON-able parts (model ids, config dicts, other keys)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
