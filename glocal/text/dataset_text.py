"""A run's text data: the CuPL, CLIP-D and template files of a text dataset (``--text-dataset``),
from ../shared/data or the folder $GLOCAL_TEXT_DATA names, aligned to the classes; class names
alone where a file is absent (every fallback reported)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from glocal.paths import SHARED_DATA
from glocal.text.files import LENIENT, align_descriptions, load_descriptions, load_templates


@dataclass
class TextInputs:
    descriptions: list[list[str]]
    clip_d: list[list[str]]
    templates: list[str]
    notes: list[str]


def text_paths(dataset: str) -> dict[str, Path]:
    """Where the shared CuPL, CLIP-D and template files of ``dataset`` live (present or not)."""
    return {"cupl": SHARED_DATA / "descriptions" / "cupl" / f"{dataset}.json",
            "clip_d": SHARED_DATA / "descriptions" / "clip_d" / f"{dataset}.json",
            "templates": SHARED_DATA / "templates" / f"{dataset}.json"}


def check_text_dataset(dataset: str | None) -> None:
    """A named text dataset must have at least one text file (a typo would otherwise fall back to
    class names alone, silently)."""
    if dataset and not any(p.exists() for p in text_paths(dataset).values()):
        known = sorted({p.stem for folder in {q.parent for q in text_paths(dataset).values()} if folder.is_dir() for p in folder.glob("*.json")})
        raise ValueError(f"--text-dataset {dataset!r}: no CuPL, CLIP-D or template file for it under {SHARED_DATA}; "
                         + (f"known: {', '.join(known)}" if known else "that folder is absent on this machine; leave the option out to use class names"))


def text_inputs(dataset: str, classnames: list[str], keep: list[int] | None = None) -> TextInputs:
    """CuPL / CLIP-D / templates for ``dataset`` from the shared data when present (lenient
    alignment on the full class list, every fallback reported), else the class name alone;
    ``keep`` restricts the result to those class indices."""
    notes = []
    paths = text_paths(dataset)
    cupl_path, clip_d_path, templates_path = paths["cupl"], paths["clip_d"], paths["templates"]
    keys_path = SHARED_DATA / "classnames" / f"{dataset}_descriptor_keys.json"
    if cupl_path.exists():
        descriptions, report = align_descriptions(classnames, load_descriptions(cupl_path), LENIENT, source=str(cupl_path))
        notes += [f"cupl: {line}" for line in report.lines()]
    else:
        descriptions = [[c] for c in classnames]
        notes.append("cupl: no description file; each class is described by its name alone")
    if clip_d_path.exists():
        keys = json.loads(keys_path.read_text()) if keys_path.exists() else None
        clip_d, report = align_descriptions(classnames, load_descriptions(clip_d_path), LENIENT, keys=keys, source=str(clip_d_path))
        notes += [f"clip_d: {line}" for line in report.lines()]
    else:
        clip_d = [[c] for c in classnames]
        notes.append("clip_d: no descriptor file; each class is described by its name alone")
    templates = load_templates(templates_path) if templates_path.exists() else ["a photo of a {}.", "a picture of a {}."]
    if keep is not None:
        descriptions = [descriptions[i] for i in keep]
        clip_d = [clip_d[i] for i in keep]
    return TextInputs(descriptions, clip_d, templates, notes)
