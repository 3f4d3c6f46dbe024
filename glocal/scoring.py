"""Core-level driver: which features the requested methods need, and their scores.

The pipeline's tasks call these; so does ``glocal demo``. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glocal.budget import DEFAULT_SCORE_MEMORY, ScoreShape
from glocal.crop_kinds import CROP_KINDS, kind_config_key
from glocal.config import ABSConfig, LGCAConfig, WaffleConfig, WCAConfig, config_for
from glocal.registry import MethodSpec
from glocal.methods import validate_methods


@dataclass(frozen=True)
class MethodRun:
    spec: MethodSpec
    config: object


def resolve_methods(names: list[str], presets: dict[str, str] | None = None) -> list[MethodRun]:
    """Validate names (one error for all unknown ones) and attach each method's config."""
    presets = presets or {}
    return [MethodRun(spec, config_for(spec.name, spec.config_cls, presets.get(spec.name))) for spec in validate_methods(names)]


def with_crops(run: MethodRun, n: int) -> MethodRun:
    """Override N (keeping LGCA's K*T <= N0)."""
    import dataclasses

    config = run.config
    if not hasattr(config, "n_crops"):
        return run
    changes = {"n_crops": n}
    if isinstance(config, LGCAConfig):
        changes["top_k"] = max(1, min(config.top_k, n // max(config.steps, 1)))
    return dataclasses.replace(run, config=dataclasses.replace(config, **changes))


def with_overrides(run: MethodRun, fields: dict) -> MethodRun:
    """Replace config fields by name (validated by the config's own checks)."""
    import dataclasses

    if not fields:
        return run
    if not dataclasses.is_dataclass(run.config) or not dataclasses.fields(run.config):
        raise ValueError(f"method {run.spec.name!r} has no parameters to override (got {sorted(fields)})")
    known = {f.name for f in dataclasses.fields(run.config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{type(run.config).__name__} has no field(s) {unknown}; fields: {', '.join(sorted(known))}")
    return dataclasses.replace(run, config=dataclasses.replace(run.config, **fields))


# A kind's geometry version: raised when glocal changes how a kind's crops are made without a
# config field changing, so features stored before are recomputed rather than reused as if equal.
# feat 2: paper-pairing windows mapped through the region the backbone's tokens cover (stretching
# backbones such as SigLIP and ALIGN), no longer always CLIP's centre square.
FEATURE_VERSIONS = {"feat": 2}


def feature_parts(configs: dict[str, object], needs: set[str], base: tuple, attention_key: str | None, text_key: str | None) -> dict[str, str]:
    """One content key per image feature kind in ``needs``: what decides that kind's features.
    ``base`` = (dataset, fingerprint, backbone). Two encodes agree on a kind exactly when its part
    keys are equal, so a stored encode whose parts cover a run's parts can serve that run."""
    from glocal.config import content_key, feature_fields

    def part(kind: str, config_name: str | None, extra=None) -> str:
        config = configs.get(config_name) if config_name else None
        version = CROP_KINDS[kind].version if kind in CROP_KINDS else FEATURE_VERSIONS.get(kind)
        return content_key("feature", kind, *base, feature_fields(config) if config is not None else None, extra,
                           *([version] if version else []))

    owners = {"full": (None, None), "raw": ("abs_config", attention_key), "feat": ("abs_config", attention_key),
              "wca": ("wca_config", None), "lgca": ("lgca_config", text_key)}
    # a registered crop kind is decided by its config (if any) alone
    return {kind: part(kind, *owners.get(kind, (kind_config_key(kind), None))) for kind in sorted(needs)}


def build_runs(methods: list[str], presets: dict[str, str] | None = None, n_crops: int | None = None,
               overrides: dict[str, dict] | None = None) -> list[MethodRun]:
    """Methods with their configs: preset (or default), then ``n_crops``, then field overrides.
    Every error (unknown method, preset, field or an invalid value) is raised here, before compute."""
    runs = resolve_methods(methods, presets)
    if n_crops is not None:
        runs = [with_crops(r, n_crops) for r in runs]
    unknown = sorted(set(overrides or {}) - {r.spec.name for r in runs})
    if unknown:
        raise ValueError(f"overrides name methods not in this run: {unknown}")
    return [with_overrides(r, (overrides or {}).get(r.spec.name, {})) for r in runs]


def runs_from_configs(configs: dict[str, dict]) -> list[MethodRun]:
    """Rebuild MethodRuns from {method: config dict} as stored with a run."""
    runs = []
    for spec in validate_methods(list(configs)):
        cfg = dict(configs[spec.name])
        cfg.pop("type", None)
        if "layer" in cfg:  # runs stored before the paper's 0-based layer_id: layer was 1-based
            layer = cfg.pop("layer")
            cfg["layer_id"] = None if layer is None else layer - 1
        if "step_weights" in cfg and cfg["step_weights"] is not None:
            cfg["step_weights"] = tuple(cfg["step_weights"])
        runs.append(MethodRun(spec, spec.config_cls(**cfg) if spec.config_cls else config_for(spec.name, None)))
    return runs


# Image features whose crops are chosen with the class text embeddings (LGCA's saliency): a new
# description set changes them, so only these are re-encoded when descriptions change.
TEXT_GUIDED_FEATURES = frozenset({"lgca"})


def text_guided(run: MethodRun) -> bool:
    return bool(run.spec.image_needs_for(run.config) & TEXT_GUIDED_FEATURES)


def image_needs(runs: list[MethodRun]) -> set[str]:
    needs = {"full"}
    for run in runs:
        needs |= run.spec.image_needs_for(run.config)
    return needs


def text_needs(runs: list[MethodRun]) -> set[str]:
    return set().union(*(run.spec.text_needs for run in runs)) if runs else set()


def waffle_form(runs: list[MethodRun]) -> tuple[str, int]:
    """(construction, seed) of the run's Waffle sentences (the default form without a waffle run)."""
    config = next((r.config for r in runs if isinstance(r.config, WaffleConfig)), WaffleConfig())
    return config.construction, config.seed


def configs_by_type(runs: list[MethodRun]) -> dict[str, object]:
    """The single ABS / WCA / LGCA config the extractor uses (one of each per run), and the config
    of each registered crop kind a method needs, under ``kind:<name>``."""
    out: dict[str, object] = {}

    def put(key: str, config) -> None:
        if key in out and out[key] != config:
            raise ValueError(f"two different {type(config).__name__}s in one run; score them in separate runs")
        out[key] = config

    for run in runs:
        for key, cls in (("abs_config", ABSConfig), ("wca_config", WCAConfig), ("lgca_config", LGCAConfig)):
            if isinstance(run.config, cls):
                put(key, run.config)
        for name in run.spec.image_needs_for(run.config):
            kind = CROP_KINDS.get(name)
            if kind is not None and kind.config is not None and isinstance(run.config, kind.config):
                put(kind_config_key(name), run.config)
    return out


def check_memory(runs: list[MethodRun], shape: ScoreShape, memory: int) -> None:
    """Raise ``BudgetError`` before compute if any method's smallest scoring chunk exceeds ``memory``."""
    for run in runs:
        run.spec.check_memory(run.config, shape, memory)


def score_all(runs: list[MethodRun], features, bank, memory: int = DEFAULT_SCORE_MEMORY) -> dict[str, torch.Tensor]:
    """{method: (B, C) scores}; each method's temporaries within ``memory`` bytes."""
    return {run.spec.name: run.spec.score(features, bank, run.config, memory).float() for run in runs}


def restrict_classes(scores: torch.Tensor, subset: list[int] | None) -> torch.Tensor:
    """(n, C) scores -> (n, C) with every class outside ``subset`` at -inf, so top-k ranks only the
    subset while class indices stay in the full label space (ImageNet-R/-A: 200 of 1000 logits)."""
    if subset is None:
        return scores
    keep = torch.zeros(scores.shape[1], dtype=torch.bool)
    keep[torch.as_tensor(subset, dtype=torch.long)] = True
    return scores.masked_fill(~keep.to(scores.device), float("-inf"))
