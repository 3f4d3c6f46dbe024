"""Where glocal finds its text data (class lists, templates, description files, Waffle's words)
and the test fixtures of a checkout."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

# shipped with glocal (gzip-compressed JSON; glocal/text/data/PROVENANCE.md says where each file comes from)
PACKAGED_TEXT = Path(__file__).resolve().parent / "text" / "data"
# a checkout's ../shared/data: the photos and the DINOv2 model the tests and the demo use (never shipped)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def text_data(relative: str) -> Path:
    """A text data file, e.g. ``descriptions/cupl/imagenet.json``: the one in the folder
    ``$GLOCAL_TEXT_DATA`` names when it has it (other datasets, your own files; laid out the same
    way, plain JSON), else the one shipped with glocal. The path may not exist (no such file)."""
    override = os.environ.get("GLOCAL_TEXT_DATA")
    if override and (Path(override) / relative).exists():
        return Path(override) / relative
    packaged = PACKAGED_TEXT / relative
    compressed = packaged.with_name(packaged.name + ".gz")
    return compressed if compressed.exists() else packaged


def text_data_names(folder: str) -> list[str]:
    """The dataset ids with a file in ``folder`` (e.g. ``templates``), shipped or overridden."""
    names = {p.name.removesuffix(".gz").removesuffix(".json") for p in (PACKAGED_TEXT / folder).glob("*.json*")}
    override = os.environ.get("GLOCAL_TEXT_DATA")
    if override:
        names |= {p.stem for p in (Path(override) / folder).glob("*.json")}
    return sorted(names)


def read_text_file(path: str | os.PathLike) -> str:
    """A text file's contents, gzip-compressed or not."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def read_json(path: str | os.PathLike):
    return json.loads(read_text_file(path))
