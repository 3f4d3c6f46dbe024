"""Typed method configurations and named presets.

Numbers come from ``docs/methods.md`` (the papers and their official code). A preset is a named,
frozen configuration; ``config_hash`` keys stored artifacts by content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Literal


def scoring(default):
    """A field only the scoring step reads: changing it never changes an image feature, so stored
    features are reused (sweeps over it, the Frs/Ffs/Soft-M ablations, re-scores). The Frs/Ffs
    switches pick which features scoring uses; the crop plans do not depend on them."""
    return field(default=default, metadata={"scoring_only": True})


class CropCount:
    """A config with a crop count, ``n_crops``: what ``--n-crops`` and an ``n_crops`` sweep replace."""

    def with_crops(self, n: int):
        """This config with N = ``n`` crops."""
        return dataclasses.replace(self, n_crops=n)


@dataclass(frozen=True)
class ABSConfig(CropCount):
    """Attention-Based Selection (Cai et al., ICML 2025)."""

    # fields renamed since runs were first stored: old name -> (new name, old value -> new value);
    # `layer` was 1-based, the paper's Layer_id is 0-based
    RENAMED = {"layer": ("layer_id", lambda layer: None if layer is None else layer - 1)}

    n_crops: int = 60  # N: raw-space crops, and as many feature-space windows
    alpha: float = 0.5  # raw crop side drawn in [int(alpha*W), int(beta*W)] (height likewise)
    beta: float = 0.9
    top_k: int = 20  # centres are drawn among the k most attended patches
    centre_temperature: float = 0.03  # softmax(values / T) over those k patches
    n_descriptions: int = scoring(50)  # M: first M CuPL sentences per class
    match_temperature: float = scoring(0.03)  # soft matching: cos / T, softmax over all (class, sentence)
    # "paper": feature windows share the raw boxes' centre and size, mapped through CLIP's centre
    # crop. "code": windows drawn independently (second multinomial, square side), mapped from the
    # attention grid as if it covered the centre crop -- misaligned on non-square images, as the
    # official code is.
    pairing: Literal["paper", "code"] = "paper"
    window_min: float = 0.6  # code pairing: window side in [int(0.6*g), int(0.9*g)]
    window_max: float = 0.9
    use_raw: bool = scoring(True)  # Frs: raw-space crops
    use_feature: bool = scoring(True)  # Ffs: feature-space windows
    soft_matching: bool = scoring(True)  # off: mean over crops of mean cos over sentences (CuPL-style)
    attention: str = "dino"  # attention source: dino | clip | uniform (random centres)
    raw_augment: str = "crop"  # crop | mask | highlight | red_circle
    feature_augment: str = "crop"  # crop | mask | highlight_tokens | highlight_attention
    # The paper's Layer_id (Table 7) and the official ``--layer2``: the 0-based index of the block
    # whose input tokens are cropped (11 = the last block of a 12-block tower); None = the last.
    layer_id: int | None = None
    # code pairing, attention grid -> token grid when they differ (DINO's 14x14 onto L/14's 16x16):
    # "official": the official map_index_14_to_16, row * g // g_a; "centre": the cell holding the
    # attention patch's centre, floor((row + 0.5) * g / g_a). Identical on B/32 (7) and B/16 (14).
    grid_map: Literal["official", "centre"] = "official"
    # code pairing: the feature centres are drawn among this many patches (the official code fixes
    # 20 there whatever --top_k is); None = top_k
    feature_top_k: int | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1, "n_crops must be >= 1")
        _check(0 < self.alpha <= self.beta <= 1, "need 0 < alpha <= beta <= 1")
        _check(self.top_k >= 1, "top_k must be >= 1")
        _check(self.use_raw or self.use_feature, "ABS needs use_raw or use_feature (or both)")
        _check(self.pairing in ("paper", "code"), "pairing must be 'paper' or 'code'")
        _check(0 < self.window_min <= self.window_max <= 1, "need 0 < window_min <= window_max <= 1")
        _check(self.n_descriptions >= 1, "n_descriptions must be >= 1")
        _check(self.layer_id is None or self.layer_id >= 0, "layer_id is the paper's 0-based Layer_id: >= 0 (None = the last block)")
        _check(self.grid_map in ("official", "centre"), "grid_map must be 'official' or 'centre'")
        _check(self.feature_top_k is None or self.feature_top_k >= 1, "feature_top_k must be >= 1 (or None = top_k)")


@dataclass(frozen=True)
class WCAConfig(CropCount):
    """Weighted visual-text cross alignment (Li et al., ICML 2024), as its code does it."""

    n_crops: int = 60  # 60 for ImageNet, 100 otherwise in the official runs
    min_scale: float = 0.1  # crop side = int(U(min_scale, max_scale) * min(H, W))
    max_scale: float = 0.9
    crop_weight_scale: float = scoring(math.exp(4))  # w_i = softmax(scale * cos(f_full, f_i))
    description_weight_scale: float = scoring(math.exp(2))  # v_j = softmax(scale * cos(t_j, t_prompt))
    # "code": cos(normalise(sum w f), normalise(sum v t)); "paper": sum_i sum_j w_i v_j cos(f_i, t_j)
    form: Literal["code", "paper"] = scoring("code")
    # The official protocol: the N crops are a pool; each of ``draws`` draws scores ``draw_size``
    # crops picked from it with replacement (the same picks for every image of the draw), and the
    # accuracy is the mean (± std) over draws. draws=1 with draw_size=None scores the N crops once.
    draws: int = scoring(1)
    draw_size: int | None = scoring(None)  # None: every crop of the pool, no resampling
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1, "n_crops must be >= 1")
        _check(0 < self.min_scale <= self.max_scale <= 1, "need 0 < min_scale <= max_scale <= 1")
        _check(self.form in ("code", "paper"), "form must be 'code' or 'paper'")
        _check(self.draws >= 1, "draws must be >= 1")
        _check(self.draw_size is None or self.draw_size >= 1, "draw_size must be >= 1 (or None = the whole pool)")
        _check(self.draws == 1 or self.draw_size is not None, "several draws need a draw_size (crops picked per draw)")


@dataclass(frozen=True)
class BiFTAConfig(CropCount):
    """BiFTA (TMLR 2026): WCA's weighted crops and descriptions, refined on both sides: random
    crops overlapping a kept one by IoU > ``iou_threshold`` are dropped (view refinement), and a
    description with cosine > ``description_similarity`` to a kept one of its class is dropped
    (description refinement). Its official evaluation: ``draws`` draws of ``draw_size`` crops per
    image, picked with replacement from that image's kept crops, accuracy the mean (+- std)."""

    n_crops: int = 100  # n_samples: random square crops drawn, before the IoU filter
    min_scale: float = 0.5  # alpha: crop side = int(U(alpha, beta) * min(H, W))
    max_scale: float = 0.9  # beta
    iou_threshold: float = 0.85  # a crop is kept if its IoU with every kept crop is <= this
    max_kept: int = 100  # max_queue_len: the filter stops after this many kept crops
    crop_weight_scale: float = scoring(math.exp(4))  # w_i = softmax(e^4 cos(f_full, f_i)) (image_scale 4.0)
    description_weight_scale: float = scoring(math.exp(2))  # v_j = softmax(e^2 cos(t_j, t_prompt)) (text_scale 2.0)
    description_similarity: float = scoring(0.99)  # refinement: drop a description this close to a kept one
    n_descriptions: int = scoring(50)  # at most this many refined descriptions per class (the "top50" file)
    draws: int = scoring(20)  # n_run
    draw_size: int = scoring(60)  # patch_n: crops picked per draw, with replacement
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1 and self.max_kept >= 1, "n_crops and max_kept must be >= 1")
        _check(0 < self.min_scale <= self.max_scale <= 1, "need 0 < min_scale <= max_scale <= 1")
        _check(0 <= self.iou_threshold <= 1, "iou_threshold must be in [0, 1]")
        _check(-1 <= self.description_similarity <= 1, "description_similarity is a cosine: in [-1, 1]")
        _check(self.n_descriptions >= 1 and self.draws >= 1 and self.draw_size >= 1, "n_descriptions, draws and draw_size must be >= 1")


@dataclass(frozen=True)
class ViewsConfig(CropCount):
    """Augmented views, as ZERO's and MTA's official code draws them: torchvision's
    ``RandomResizedCrop(S)`` (area share in [min_scale, max_scale], aspect ratio log-uniform in
    [min_ratio, max_ratio], the box resized to S x S, bilinear) then ``RandomHorizontalFlip(flip)``,
    of the original image; the first view (the whole image, resized and centre-cropped) is the
    run's full-image feature. The methods sharing these views (ZERO, MTA) subclass this config."""

    n_crops: int = 63  # augmented views besides the original: the official batch of 64 views
    min_scale: float = 0.08  # torchvision's RandomResizedCrop defaults
    max_scale: float = 1.0
    min_ratio: float = 3 / 4
    max_ratio: float = 4 / 3
    flip: float = 0.5  # probability of a horizontal flip
    seed: int = 1

    def __post_init__(self) -> None:
        _check(self.n_crops >= 1, "n_crops must be >= 1")
        _check(0 < self.min_scale <= self.max_scale <= 1, "need 0 < min_scale <= max_scale <= 1")
        _check(0 < self.min_ratio <= self.max_ratio, "need 0 < min_ratio <= max_ratio")
        _check(0 <= self.flip <= 1, "flip is a probability")

    def views(self) -> "ViewsConfig":
        """The part that decides the views (what the crop kind keys and encodes)."""
        return ViewsConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ViewsConfig)})


@dataclass(frozen=True)
class ZeroConfig(ViewsConfig):
    """ZERO (Farina et al., NeurIPS 2024): keep the ``keep`` share of views with the lowest
    softmax entropy, let each vote its argmax (zero temperature), predict the majority."""

    keep: float = scoring(0.3)  # gamma: int(views * keep) most confident views are kept
    logit_scale: float = scoring(100.0)  # CLIP's learned scale: the entropy filter reads softmax(scale * cos)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.keep <= 1, "keep must be in (0, 1]")


@dataclass(frozen=True)
class MTAConfig(ViewsConfig):
    """MTA (Zanella & Ben Ayed, CVPR 2024): MeanShift over the views with per-view inlierness
    scores; the mode is the image embedding."""

    lambda_y: float = scoring(0.2)  # the inlierness softmax's temperature (entropic term)
    lambda_q: float = scoring(4.0)  # weight of the affinity (quadratic) term
    max_iter: int = scoring(5)  # outer, inlierness and mode iterations, each
    neighbours: float = scoring(0.3)  # bandwidth: from the int(neighbours * (views - 1)) nearest views
    logit_scale: float = scoring(100.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.lambda_y > 0 and self.max_iter >= 1 and 0 < self.neighbours <= 1, "need lambda_y > 0, max_iter >= 1, 0 < neighbours <= 1")


@dataclass(frozen=True)
class AWTConfig(ViewsConfig):
    """AWT (Zhu et al., NeurIPS 2024): augmented views x dataset-aware LLM descriptions, each set
    weighted by prediction entropy, classes scored by an optimal-transport plan between them."""

    n_crops: int = 50  # augmented views besides the original (pre_extract.sh: --batch-size 50)
    n_descriptions: int = scoring(50)  # descriptions per class after the plain prompt (evaluate.sh: N_DESC=50)
    image_temperature: float = scoring(0.5)  # view weights: softmax(-entropy / 0.5) over the views
    text_temperature: float = scoring(0.5)  # prompt weights: softmax(-entropy / 0.5) over a class's prompts
    ot_epsilon: float = scoring(0.1)  # entropic regularisation: K = exp(-(1 - cos) / eps)
    sinkhorn_threshold: float = scoring(1e-2)  # stop when mean |r - r_prev| < this
    sinkhorn_iterations: int = scoring(100)  # at most
    logit_scale: float = scoring(100.0)  # CLIP's learned scale (the logits the entropies read)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.n_descriptions >= 0, "n_descriptions must be >= 0")
        _check(self.image_temperature > 0 and self.text_temperature > 0 and self.ot_epsilon > 0, "temperatures and eps must be > 0")
        _check(self.sinkhorn_iterations >= 1, "sinkhorn_iterations must be >= 1")


@dataclass(frozen=True)
class LGCAConfig(CropCount):
    """Local crops, then progressive expansion of the most salient (glocal's documented rule)."""

    n_crops: int = 60  # N0 local crops at step 0 (WCA geometry)
    min_scale: float = 0.1
    max_scale: float = 0.5  # local crops: small by design, expansion adds the context
    steps: int = 3  # T expansion steps
    top_k: int = 20  # K most salient boxes grown per step
    growth: float = 1.5  # gamma: side multiplier per step, about the box centre, clamped
    step_weights: tuple[float, ...] | None = scoring(None)  # lambda for (full, step 0..T); None = uniform
    crop_weight_scale: float = scoring(math.exp(4))
    description_weight_scale: float = scoring(math.exp(2))
    seed: int = 1

    def with_crops(self, n: int) -> "LGCAConfig":
        """This config with N0 = ``n`` crops, K lowered where needed to keep K*T <= N0."""
        return dataclasses.replace(self, n_crops=n, top_k=max(1, min(self.top_k, n // max(self.steps, 1))))

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
class DescriptorConfig:
    """CLIP-D (Menon & Vondrick) and WaffleCLIP (Roth et al.): a class scored by its descriptor sentences."""

    # "cosine": mean_j cos(f, t_cj), Menon & Vondrick's paper. "embedding": cos(f, normalise(mean_j
    # t_cj)), the official code of WCA and ABS (zeroshot_classifier) whose rows the ABS tables print.
    averaging: Literal["cosine", "embedding"] = "cosine"

    def __post_init__(self) -> None:
        _check(self.averaging in ("cosine", "embedding"), "averaging must be 'cosine' or 'embedding'")


@dataclass(frozen=True)
class WaffleConfig(DescriptorConfig):
    """WaffleCLIP's random descriptors: how they are built (the text they make), then averaged."""

    # "glocal": per class as many descriptors as it has CLIP-D ones, alternately two random words
    # and two random-letter strings, sentence "{c}, which ...". "official": construct_random of the
    # WCA/ABS code: one shared set of 15 random-word and 15 random-character descriptors for every
    # class, lengths fitted to the class names, sentence "A photo of a {c}, which ....".
    construction: Literal["glocal", "official"] = "glocal"
    seed: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.construction in ("glocal", "official"), "construction must be 'glocal' or 'official'")


@dataclass(frozen=True)
class NoConfig:
    """Methods without parameters (CLIP, CLIP-E, CLIP-D, Waffle, CuPL)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


PRESETS: dict[str, object] = {
    "abs-paper": ABSConfig(n_crops=60, alpha=0.5, beta=0.9, top_k=20, n_descriptions=50, pairing="paper"),
    "abs-code": ABSConfig(n_crops=50, alpha=0.6, beta=0.9, top_k=20, n_descriptions=50, pairing="code", grid_map="official",
                         feature_top_k=20),
    "abs-frs-only": ABSConfig(use_feature=False),
    "abs-ffs-only": ABSConfig(use_raw=False),
    "abs-no-softm": ABSConfig(soft_matching=False),
    "wca-code": WCAConfig(form="code"),
    "wca-paper": WCAConfig(form="paper"),
    # the official evaluation: a pool of 60 crops (ImageNet; `glocal reproduce` uses 100 elsewhere,
    # as the official configs do), 20 draws of 60 with replacement, mean ± std
    "wca-official": WCAConfig(form="code", n_crops=60, draws=20, draw_size=60),
    "lgca": LGCAConfig(),
    "clip_d-paper": DescriptorConfig(averaging="cosine"),
    "clip_d-official": DescriptorConfig(averaging="embedding"),
    "waffle-glocal": WaffleConfig(averaging="cosine", construction="glocal"),
    "waffle-official": WaffleConfig(averaging="embedding", construction="official"),
    "zero-official": ZeroConfig(),  # 64 views (the original + 63), gamma 0.3: run.py / ttas/zero.py
    "mta-official": MTAConfig(),  # 64 views, lambda_y 0.2, lambda_q 4, 5 iterations: main.py / mta.py
    "awt-official": AWTConfig(),  # 1 + 50 views, 1 + 50 prompts, temperatures 0.5, eps 0.1: scripts/*.sh, evaluate.py
    # configs/imagenet.yaml and main.py: 100 crops in [0.5, 0.9], IoU 0.85, 20 draws of 60, e^4 / e^2,
    # descriptions refined at cosine 0.99, at most 50 (its bifta0.99_top50 file)
    "bifta-official": BiFTAConfig(),
}
# The preset a method uses when none is named.
DEFAULT_PRESET = {"abs": "abs-paper", "wca": "wca-code", "lgca": "lgca", "clip_d": "clip_d-paper", "waffle": "waffle-glocal",
                  "zero": "zero-official", "mta": "mta-official",
                  "awt": "awt-official", "bifta": "bifta-official"}
# The form of each method that produced the ABS paper's tables (its official code, and WCA's for
# the baselines): what `glocal reproduce` runs.
OFFICIAL_PRESET = {"abs": "abs-code", "wca": "wca-official", "clip_d": "clip_d-official", "waffle": "waffle-official"}


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
    if type(base) is not config_cls:
        raise ValueError(f"preset {name!r} is a {type(base).__name__}, method {method_name!r} needs {config_cls.__name__}")
    return dataclasses.replace(base, **overrides) if overrides else base


def feature_fields(config) -> dict:
    """The part of a config that decides image features (its dict without scoring-only fields)."""
    skip = {f.name for f in dataclasses.fields(config) if f.metadata.get("scoring_only")}
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


def config_from_dict(config_cls: type, values: dict):
    """A config as stored with a run (``config_to_dict``) rebuilt: fields renamed since (the
    class's ``RENAMED``) under their new names, JSON lists back to tuples where the field is one."""
    values = {name: value for name, value in values.items() if name != "type"}
    for old, (new, convert) in getattr(config_cls, "RENAMED", {}).items():
        if old in values:
            values[new] = convert(values.pop(old))
    for f in dataclasses.fields(config_cls):
        if str(f.type).startswith("tuple") and values.get(f.name) is not None:
            values[f.name] = tuple(values[f.name])
    return config_cls(**values)


def config_hash(config) -> str:
    """Content hash of a configuration: equal configs, equal hash, whatever preset named them."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def content_key(*parts) -> str:
    """A short content hash of JSON-able parts (model ids, config dicts, other keys)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
