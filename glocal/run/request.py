"""The typed request of one evaluate run: what to score (dataset, methods with their presets and
overrides), with what (models, text source) and how (engine and cluster options), as one frozen
dataclass. The command line generates its run flags from the ``option`` fields (help, default,
bounds on the field), the flows receive the request whole (``flows.evaluate.evaluate(request=)``,
the cluster re-run, each sweep point, each reproduce cell, the describe re-score), and
``glocal.run.plan.plan_run`` resolves it once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCORE_MEMORY_HELP = ("bytes one method's scoring temporaries may take at a time, e.g. 512M or 2G (default 256M); "
                     "ABS's soft matching is chunked to fit, and a request that cannot fit fails before any compute")


def option(default=None, help: str = "", *, minimum: int | None = None, bare: str | None = None, required: bool = False):
    """A request field that is also a command-line flag (``--field-name``): its default and help;
    ``minimum`` for numbers, ``bare``: the value of the flag given without one, ``required``: the
    flag must be given."""
    return field(default=default, metadata={"flag": True, "help": help, "minimum": minimum, "bare": bare, "required": required})


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What one evaluate run takes beyond its dataset and methods: every one a flag of
    ``glocal evaluate``, ``eval`` and ``sweep``."""

    model: str = option(None, "the dual encoder: a transformers hub id or folder (CLIP, SigLIP, ...), or an open_clip model "
                              "(open_clip:ARCH/TAG, hf-hub:ORG/REPO in open_clip's format, or an open_clip folder)", required=True)
    attention_model: str | None = option(None, "DINO/DINOv2 hub id or dir (for ABS)")
    n_crops: int | None = option(None, "N for ABS/WCA/LGCA over their presets (smaller is faster)", minimum=1)
    text_dataset: str | None = option(None, "the CuPL, CLIP-D and template files shipped with glocal for this dataset id (imagenet, "
                                             "imagenet_v2, imagenet_sketch, imagenet_r, imagenet_a, cub, pets, dtd, food101, places365; "
                                             "$GLOCAL_TEXT_DATA adds your own)")
    templates: str | None = option(None, "prompt templates for CLIP-E: a JSON list, one per line (.txt), or a JSON object keyed by "
                                         "dataset name (CLIP_benchmark's --custom_template_file); '{}' or '{c}' for the class name. "
                                         "Default: the dataset folder's own (CLIP_benchmark layout), else --text-dataset's")
    descriptions: str | None = option(None, "CuPL-style JSON {class: [sentences]} (aligned strictly)")
    description_set: str | None = option(None, "a stored description set id (see `glocal describe`); overrides --descriptions")
    lenient_descriptions: bool = option(False, "fall back to the class name for missing/empty entries")
    crop_rounding: str = option("auto", "where the model input's centre crop starts: floor ((H-S)//2, as transformers' processors), "
                                        "round (round((H-S)/2), halves to even: torchvision's CenterCrop, as OpenAI's clip and so the "
                                        "official ABS/WCA code), or auto (round when a method runs its official preset, e.g. "
                                        "abs=abs-code or `reproduce --forms official`; else floor)")
    precision: str = option(None, "the image encoders' arithmetic: fp32, bf16, fp16, or auto (bf16 on GPUs and on CPUs with native "
                                  "bf16, e.g. AVX512-BF16 / AMX; else fp32). Default: $GLOCAL_PRECISION, else auto. Part of the "
                                  "features' key: one precision's features are never reused as another's")
    batch_size: int = option(64, "crops encoded per forward pass", minimum=1)
    compile: bool = option(False, "torch.compile the encoder's crop and window forwards (GPU runs of large datasets)")
    score_memory: str | int | None = option(None, SCORE_MEMORY_HELP)
    cluster: str | None = option(None, "run the attention and encode shards on Dask: 'local' (worker processes on this machine; "
                                       "the default when the flag has no value) or a scheduler address, e.g. tcp://10.0.0.5:8786",
                                 bare="local")
    workers: int | None = option(None, "worker processes for --cluster local (default: one per GPU, else 2)", minimum=1)


# what a stored run keeps to be re-run (describe's re-score): not where its descriptions came
# from (the re-score names its new set) and not where it ran
NOT_STORED = frozenset({"descriptions", "description_set", "reuse_encode", "cluster", "workers"})


@dataclass(frozen=True, kw_only=True)
class RunRequest(RunOptions):
    """One evaluate run."""

    dataset: str  # an ingested dataset's name
    methods: tuple[str, ...]  # registered method names
    presets: dict[str, str] | None = None  # method -> preset name (default: each method's default preset)
    overrides: dict[str, dict] | None = None  # method -> {config field: value}, over presets and n_crops
    # crop kinds encoded beyond the methods' own (a sweep encodes the union of its points' kinds
    # once, so every point that differs only in scoring reuses it)
    extra_needs: tuple[str, ...] | None = None
    reuse_encode: str | None = None  # score from this stored encode artifact (describe's re-score)

    @classmethod
    def of(cls, **fields) -> "RunRequest":
        """From keyword arguments (lists where the request holds tuples), naming any unknown one."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"a run request has no field(s) {unknown}; fields: {', '.join(sorted(known))}")
        for name in ("methods", "extra_needs"):
            if fields.get(name) is not None:
                fields[name] = tuple(fields[name])
        return cls(**fields)

    def replace(self, **changes) -> "RunRequest":
        return RunRequest.of(**{**self.fields(), **changes})

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def stored_params(self) -> dict:
        """JSON-ready: what the run keeps to be re-run (``RunRequest.of(**params)``)."""
        params = {name: value for name, value in self.fields().items() if name not in NOT_STORED}
        params["methods"] = list(self.methods)
        params["extra_needs"] = list(self.extra_needs) if self.extra_needs is not None else None
        return params


def flag_fields() -> list[dataclasses.Field]:
    """The request's fields that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(RunRequest) if f.metadata.get("flag")]
