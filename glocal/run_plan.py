"""One run's plan, resolved once from its ``RunRequest``: the methods with their configs, the crop
kinds and text sets they need, each kind's config, the attention source, the scoring budget, and
the content keys of every stage. Every check that needs no data is made here, before any compute
(and before Prefect starts, when the command line plans first); the flows, the sweep's points,
reproduce's cells, the describe re-score and the cluster path all run from the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from glocal.attention import ATTENTION_SOURCES
from glocal.budget import parse_memory, require_crops
from glocal.config import config_to_dict, content_key
from glocal.text_data import check_text_dataset
from glocal.kinds import image_kinds, kinds_for, text_guided
from glocal.request import RunRequest
from glocal.scoring import MethodRun, build_runs, configs_by_type, feature_parts, image_needs, text_needs, waffle_form


@dataclass(frozen=True)
class RunPlan:
    request: RunRequest
    runs: tuple[MethodRun, ...]
    needs: frozenset[str]  # image feature kinds: "full" and the crop kinds
    text_needs: frozenset[str]  # sentence sets
    configs: dict  # a crop kind's config key -> its config (ABS's two kinds share ``abs_config``)
    attention: str | None  # the attention source the crops are planned from (None: no kind uses one)
    memory: int  # bytes a method's scoring temporaries may take

    @property
    def methods(self) -> list[str]:
        return [run.spec.name for run in self.runs]

    @property
    def text_guided(self) -> bool:
        """Whether some crops are chosen with the class text embeddings (LGCA)."""
        return text_guided(self.needs)

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
        """The text embeddings: the backbone's content and the exact sentences."""
        return content_key("text", model_key, sets)

    def attention_key(self, dataset: str, fingerprint: str, model_key: str, attention_model_key: str | None) -> str | None:
        """The attention maps' content key: the dataset's content and the source's own model."""
        if self.attention is None:
            return None
        source = ATTENTION_SOURCES[self.attention]
        return content_key("attention", dataset, fingerprint, self.attention, attention_model_key if source.uses_model else None,
                           model_key if source.uses_backbone else None)

    def feature_parts(self, dataset: str, fingerprint: str, model_key: str, attention_key: str | None, text_key: str) -> dict[str, str]:
        """Each image feature kind's content key (``glocal.scoring.feature_parts``)."""
        return feature_parts(self.configs, set(self.needs), (dataset, fingerprint, model_key), attention_key,
                             text_key if self.text_guided else None)

    def encode_key(self, parts: dict[str, str]) -> str:
        """The crop features: every kind's part key (``feature_parts``)."""
        return content_key("encode", parts)

    def run_id(self, dataset: str, fingerprint: str, model_key: str, attention_model_key: str | None, text_key: str) -> str:
        return content_key("run", dataset, fingerprint, model_key, attention_model_key, self.method_configs(), text_key)[:12]


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
    needs = image_needs(runs) | set(request.extra_needs or ())
    unknown = needs - image_kinds()
    if unknown:
        raise ValueError(f"unknown feature kinds {sorted(unknown)}; kinds: {', '.join(sorted(image_kinds()))}")
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
    # in the flow, once the dataset's classes are known (glocal.scoring.check_memory)
    for run in runs:
        require_crops(run.spec.name, run.spec.crops_per_image(run.config), 0, memory)
    return RunPlan(request, tuple(runs), frozenset(needs), frozenset(text_needs(runs)), configs, attention, memory)
