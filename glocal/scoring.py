"""Core-level driver: which features the requested methods need, and their scores.

The pipeline's tasks call these; so does ``glocal demo``. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glocal.budget import DEFAULT_SCORE_MEMORY, ScoreShape
from glocal.config import WaffleConfig, config_for, config_from_dict
from glocal.kinds import CROP_KINDS, kinds_for
from glocal.kinds import text_guided as kinds_text_guided
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
    """Override N for a method whose config has a crop count (its ``with_crops``: LGCA keeps K*T <= N0)."""
    import dataclasses

    if not hasattr(run.config, "with_crops"):
        return run
    return dataclasses.replace(run, config=run.config.with_crops(n))


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


def feature_parts(configs: dict[str, object], needs: set[str], base: tuple, attention_key: str | None, text_key: str | None) -> dict[str, str]:
    """One content key per image feature kind in ``needs``: what decides that kind's features
    (its config's feature fields, the attention maps or text it is planned from, its version).
    ``base`` = (dataset, fingerprint, backbone). Two encodes agree on a kind exactly when its part
    keys are equal, so a stored encode whose parts cover a run's parts can serve that run."""
    from glocal.config import content_key, feature_fields

    def part(name: str) -> str:
        kind = CROP_KINDS.get(name)
        if kind is None:  # the whole image: decided by the base alone
            return content_key("feature", name, *base, None, None)
        config = configs.get(kind.config_key)
        extra = attention_key if "attention" in kind.inputs else text_key if "text" in kind.inputs else None
        return content_key("feature", name, *base, feature_fields(config) if config is not None else None, extra,
                           *([kind.version] if kind.version else []))

    return {name: part(name) for name in sorted(needs)}


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
    return [MethodRun(spec, config_from_dict(spec.config_cls, configs[spec.name]) if spec.config_cls else config_for(spec.name, None))
            for spec in validate_methods(list(configs))]


def text_guided(run: MethodRun) -> bool:
    """Whether the run's crops are chosen with the class text embeddings (re-encoded when descriptions change)."""
    return kinds_text_guided(run.spec.image_needs_for(run.config))


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
    """The config of each crop kind the methods need, under the kind's config key (one of each
    per run: ABS's two kinds share ``abs_config``)."""
    out: dict[str, object] = {}
    for run in runs:
        for kind in kinds_for(run.spec.image_needs_for(run.config)):
            if kind.config is not None and isinstance(run.config, kind.config):
                if out.get(kind.config_key, run.config) != run.config:
                    raise ValueError(f"two different {type(run.config).__name__}s in one run; score them in separate runs")
                out[kind.config_key] = run.config
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
