"""Typed requests for the command line: the options every evaluate run takes (``glocal
evaluate``, and each point of ``glocal sweep``) declared once, as a dataclass whose fields carry
their flag's help; the parsers' flags are generated from it and the flows receive its fields, so
a new option is added in one place."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field


def _number(cast, valid, what: str):
    """An argparse type: ``cast`` of the text, refused with one line unless ``valid(value)``."""
    def parse(text: str):
        value = cast(text)
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return value
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "0 or more")
positive_float = _number(float, lambda v: v > 0, "a positive number")

SCORE_MEMORY_HELP = ("bytes one method's scoring temporaries may take at a time, e.g. 512M or 2G (default 256M); "
                     "ABS's soft matching is chunked to fit, and a request that cannot fit fails before any compute")


def option(default=None, help: str = "", **argparse_kwargs):
    """A request field and its command-line flag (``--field-name``): default, help, argparse extras."""
    return field(default=default, metadata={"help": help, "argparse": argparse_kwargs})


@dataclass(frozen=True)
class RunOptions:
    """What one evaluate run takes beyond its dataset and methods (the flow's keyword arguments)."""

    model: str = option(None, "CLIP hub id or local dir", required=True)
    attention_model: str | None = option(None, "DINO/DINOv2 hub id or dir (for ABS)")
    n_crops: int | None = option(None, "N for ABS/WCA/LGCA over their presets (smaller is faster)", type=positive_int)
    text_dataset: str | None = option(None, "use ../shared/data text files of this dataset id (e.g. imagenet)")
    descriptions: str | None = option(None, "CuPL-style JSON {class: [sentences]} (aligned strictly)")
    description_set: str | None = option(None, "a stored description set id (see `glocal describe`); overrides --descriptions")
    lenient_descriptions: bool = option(False, "fall back to the class name for missing/empty entries", action="store_true")
    batch_size: int = option(64, "crops encoded per forward pass", type=positive_int)
    compile: bool = option(False, "torch.compile the encoder's crop and window forwards (GPU runs of large datasets)", action="store_true")
    score_memory: str | None = option(None, SCORE_MEMORY_HELP)
    cluster: str | None = option(None, "run the attention and encode shards on Dask: 'local' (worker processes on this machine; "
                                       "the default when the flag has no value) or a scheduler address, e.g. tcp://10.0.0.5:8786",
                                 nargs="?", const="local")
    workers: int | None = option(None, "worker processes for --cluster local (default: one per GPU, else 2)", type=positive_int)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field, named after it, with the field's default and help."""
        for f in dataclasses.fields(cls):
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=f.default, help=f.metadata["help"],
                                **f.metadata["argparse"])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunOptions":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def flow_kwargs(self) -> dict:
        return dataclasses.asdict(self)
