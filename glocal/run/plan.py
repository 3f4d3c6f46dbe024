"""One run's plan, resolved once from its ``RunRequest``: the methods with their configs, the crop
kinds and text sets they need, each kind's config, the attention source, the scoring budget, and
the content keys of every stage. Every check that needs no data is made here, before any compute
(and before Prefect starts, when the command line plans first); the flows, the sweep's points,
reproduce's cells, the describe re-score and the cluster path all run from the same plan.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

from glocal.config import WaffleConfig, config_for, config_from_dict
from glocal.kinds import CROP_KINDS
from glocal.methods import validate_methods
from glocal.methods.budget import ScoreShape
from glocal.methods.registry import MethodSpec

from glocal.encode.attention import ATTENTION_SOURCES
from glocal.methods.budget import parse_memory, require_crops
from glocal.config import config_to_dict, content_key
from glocal.text.dataset_text import check_text_dataset
from glocal.kinds import image_kinds, kinds_for
from glocal.kinds import text_guided as kinds_text_guided
from glocal.run.request import RunRequest


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
                # a method config that extends the kind's (ZERO's and MTA's extend ViewsConfig)
                # hands the kind only its part, so the methods share the kind's crops
                config = run.config if type(run.config) is kind.config else \
                    kind.config(**{f.name: getattr(run.config, f.name) for f in dataclasses.fields(kind.config)})
                held = out.get(kind.config_key, config)
                if held != config and kind.nested and dataclasses.replace(held, n_crops=config.n_crops) == config:
                    config = max(held, config, key=lambda c: c.n_crops)  # the shorter plans are its first crops
                elif held != config:
                    raise ValueError(f"two different {type(config).__name__}s in one run; score them in separate runs")
                out[kind.config_key] = config
    return out


def check_memory(runs: list[MethodRun], shape: ScoreShape, memory: int) -> None:
    """Raise ``BudgetError`` before compute if any method's smallest scoring chunk exceeds ``memory``."""
    for run in runs:
        run.spec.check_memory(run.config, shape, memory)



@dataclass(frozen=True)
class RunPlan:
    request: RunRequest
    runs: tuple[MethodRun, ...]
    needs: frozenset[str]  # image feature kinds: "full" and the crop kinds
    text_needs: frozenset[str]  # sentence sets
    configs: dict  # a crop kind's config key -> its config (ABS's two kinds share ``abs_config``)
    attention: str | None  # the attention source the crops are planned from (None: no kind uses one)
    memory: int  # bytes a method's scoring temporaries may take
    crop_rounding: str = "floor"  # the model input's centre-crop offset ("floor" | "round"), resolved from the request
    precision: str = "fp32"  # the image encoders' arithmetic ("fp32" | "bf16" | "fp16"), resolved from the request

    def image_model_key(self, model_key: str) -> str:
        """The backbone as the image side sees it: its weights, the centre-crop rounding when it
        is not the processor's and the precision when it is not fp32 (so floor / fp32 keys stay
        those of runs made before the options)."""
        key = model_key if self.crop_rounding == "floor" else f"{model_key}|centre-crop:{self.crop_rounding}"
        return key if self.precision == "fp32" else f"{key}|precision:{self.precision}"

    @property
    def methods(self) -> list[str]:
        return [run.spec.name for run in self.runs]

    @property
    def text_guided(self) -> bool:
        """Whether some crops are chosen with the class text embeddings (LGCA)."""
        return kinds_text_guided(self.needs)

    def waffle_form(self) -> tuple[str, int]:
        return waffle_form(list(self.runs))

    def method_configs(self) -> dict[str, dict]:
        """method -> its config as stored with the run."""
        return {run.spec.name: config_to_dict(run.config) for run in self.runs}

    def kind_configs(self) -> dict[str, dict]:
        """config key -> the config's fields, as the encode workers rebuild them."""
        return {key: {k: v for k, v in config_to_dict(config).items() if k != "type"} for key, config in self.configs.items()}

    # every stage's content key, here in one place: a stored unit is reused exactly when its key is equal

    def text_key(self, model_key: str, sets: dict) -> str:
        """The run's text: the backbone's content and the exact sentences of every set (a part of
        the run id and of text-guided crops' keys)."""
        return content_key("text", model_key, sets)

    @staticmethod
    def text_kind_keys(model_key: str, sets: dict) -> dict[str, str]:
        """Each text kind's embeddings, stored apart: the backbone's content, the kind and its
        exact sentences for these classes, so any run needing them reuses them."""
        return {kind: content_key("text-kind", model_key, kind, sets["classnames"], value)
                for kind, value in sets.items() if kind != "classnames"}

    def attention_key(self, dataset: str, fingerprint: str, model_key: str, attention_model_key: str | None) -> str | None:
        """The attention maps' content key: the dataset's content and the source's own model."""
        if self.attention is None:
            return None
        source = ATTENTION_SOURCES[self.attention]
        return content_key("attention", dataset, fingerprint, self.attention, attention_model_key if source.uses_model else None,
                           self.image_model_key(model_key) if source.uses_backbone else None)

    def feature_parts(self, dataset: str, fingerprint: str, model_key: str, attention_key: str | None, text_key: str) -> dict[str, str]:
        """Each image feature kind's content key (``glocal.run.plan.feature_parts``)."""
        return feature_parts(self.configs, set(self.needs), (dataset, fingerprint, self.image_model_key(model_key)), attention_key,
                             text_key if self.text_guided else None)

    def encode_key(self, parts: dict[str, str]) -> str:
        """The crop features: every kind's part key (``feature_parts``)."""
        return content_key("encode", parts)

    def run_id(self, dataset: str, fingerprint: str, model_key: str, attention_model_key: str | None, text_key: str) -> str:
        return content_key("run", dataset, fingerprint, self.image_model_key(model_key), attention_model_key, self.method_configs(),
                           text_key)[:12]


def score_key(run_id: str, encode_key: str) -> str:
    """A run's scores: the run (dataset content, models, methods, configs, sentences) and the features it scored."""
    return content_key("score", run_id, encode_key)


def plan_run(request: RunRequest) -> RunPlan:
    """Resolve ``request``; raises ``ValueError`` (one line: the problem and the remedy) for any
    unknown method, preset, field, value, crop kind, text dataset, budget or missing model."""
    if request.workers and not request.cluster:
        raise ValueError("--workers needs --cluster")
    runs = build_runs(list(request.methods), request.presets, request.n_crops, request.overrides)
    memory = parse_memory(request.score_memory)
    check_text_dataset(request.text_dataset)
    if request.templates:
        from glocal.text.files import load_templates

        load_templates(request.templates, request.dataset)  # a bad file fails here, before any compute
    needs = image_needs(runs) | set(request.extra_needs or ())
    unknown = needs - image_kinds()
    if unknown:
        raise ValueError(f"unknown feature kinds {sorted(unknown)}; kinds: {', '.join(sorted(image_kinds()))}")
    check_token_grid(request.model, runs)
    configs = configs_by_type(runs)
    unconfigured = [kind.name for kind in kinds_for(needs) if kind.config is not None and kind.config_key not in configs]
    if unconfigured:
        raise ValueError(f"extra_needs {sorted(request.extra_needs or [])} asks for crops no method of this run configures "
                         f"({', '.join(unconfigured)})")
    # the attention maps the crops are planned from: named by the planning kind's config (ABS's ``attention``)
    attention = next((configs[kind.config_key].attention for kind in kinds_for(needs) if "attention" in kind.inputs), None)
    if attention is not None and attention not in ATTENTION_SOURCES:
        raise ValueError(f"unknown attention source {attention!r}; choose from {', '.join(ATTENTION_SOURCES)}")
    if attention is not None and ATTENTION_SOURCES[attention].uses_model and not request.attention_model:
        raise ValueError(f"ABS with {attention.upper()} attention needs --attention-model (a DINO/DINOv2 id or dir)")
    # every method's crops counted before any compute: the cap here; against the scoring budget
    # in the flow, once the dataset's classes are known (glocal.run.plan.check_memory)
    for run in runs:
        require_crops(run.spec.name, run.spec.crops_per_image(run.config), 0, memory)
    return RunPlan(request, tuple(runs), frozenset(needs), frozenset(text_needs(runs)), configs, attention, memory,
                   resolve_crop_rounding(request), resolve_precision(request.precision))


def check_token_grid(model: str | None, runs: list[MethodRun]) -> None:
    """Methods whose crops are cut on the token grid (ABS's feature windows) refused, by name, for
    a backbone without one (open_clip's timm / ResNet trunks), before any compute."""
    from glocal.backbones.openclip import is_open_clip, token_grid_problem

    if not is_open_clip(model):
        return
    on_grid = sorted({run.spec.name for run in runs for kind in kinds_for(run.spec.image_needs_for(run.config)) if kind.token_layer})
    problem = token_grid_problem(model) if on_grid else None
    if problem:
        raise ValueError(f"{model}: {problem}, so {', '.join(on_grid)} (feature-space windows on the token grid) cannot run on it; "
                         "drop them from --methods (the full-image and raw-crop methods can)")


PRECISIONS = ("fp32", "bf16", "fp16")


def native_bf16_cpu() -> bool:
    """Whether this machine's CPU computes bf16 natively (AVX512-BF16 or AMX-BF16, from Linux's
    /proc/cpuinfo flags): there bf16 GEMMs run ~2x fp32's; elsewhere they are emulated, slower."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str | None, device: str | None = None) -> str:
    """--precision (None: $GLOCAL_PRECISION, else auto) -> fp32 | bf16 | fp16. auto: bf16 on a
    GPU (``device``: where the encoders run, default this process's) and on a CPU with native
    bf16, else fp32."""
    import os

    chosen = precision or os.environ.get("GLOCAL_PRECISION") or "auto"
    if chosen == "auto":
        if device is None:
            from glocal.encode.cache import compute_device

            device = compute_device()
        return "bf16" if device.startswith("cuda") or native_bf16_cpu() else "fp32"
    if chosen not in PRECISIONS:
        raise ValueError(f"--precision {chosen!r}: choose fp32, bf16, fp16 or auto")
    return chosen


def resolve_crop_rounding(request: RunRequest) -> str:
    """"auto": torchvision's rounding when a method runs in its official form (the official code
    preprocesses with OpenAI's clip, whose CenterCrop rounds), else the processor's floor; the
    whole run shares it, as the official runs' baselines did."""
    from glocal.backbones.preprocess import CROP_ROUNDINGS
    from glocal.config import OFFICIAL_PRESET

    if request.crop_rounding == "auto":
        from glocal.backbones.openclip import is_open_clip

        official = any(OFFICIAL_PRESET.get(method) == preset for method, preset in (request.presets or {}).items())
        return "round" if official or is_open_clip(request.model) else "floor"  # open_clip's own transform is torchvision's
    if request.crop_rounding not in CROP_ROUNDINGS:
        raise ValueError(f"--crop-rounding {request.crop_rounding!r}: choose floor, round or auto")
    return request.crop_rounding
