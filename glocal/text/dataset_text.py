"""A run's text data: the CuPL, CLIP-D and template files of a text dataset (``--text-dataset``),
shipped with glocal (glocal/text/data) or in the folder $GLOCAL_TEXT_DATA names, aligned to the classes; class names
alone where a file is absent (every fallback reported)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import json

from glocal.paths import read_text_file, text_data, text_data_names
from glocal.text.files import LENIENT, align_descriptions, load_classnames, load_descriptions, load_templates

AWT_DEFAULT_TEMPLATE = "a photo of a {}"


@dataclass
class TextInputs:
    descriptions: list[list[str]]
    clip_d: list[list[str]]
    templates: list[str]
    notes: list[str]
    # AWT's released descriptions of the text dataset (None: it has none, AWT reads CuPL's) and
    # its one prompt template (AWT's CUSTOM_TEMPLATES; "a photo of a {}" for other datasets)
    awt: list[list[str]] | None = None
    awt_template: str = AWT_DEFAULT_TEMPLATE


def text_paths(dataset: str) -> dict[str, Path]:
    """Where the CuPL, CLIP-D and template files of ``dataset`` are (``glocal.paths.text_data``:
    shipped with glocal, or under $GLOCAL_TEXT_DATA; present or not)."""
    return {"cupl": text_data(f"descriptions/cupl/{dataset}.json"), "clip_d": text_data(f"descriptions/clip_d/{dataset}.json"),
            "templates": text_data(f"templates/{dataset}.json")}


def check_text_dataset(dataset: str | None) -> None:
    """A named text dataset must have at least one text file (a typo would otherwise fall back to
    class names alone, silently)."""
    if dataset and not any(p.exists() for p in text_paths(dataset).values()):
        known = sorted({name for folder in ("descriptions/cupl", "descriptions/clip_d", "templates") for name in text_data_names(folder)})
        raise ValueError(f"--text-dataset {dataset!r}: no CuPL, CLIP-D or template file for it; known: {', '.join(known)} "
                         "(your own files: a folder laid out as glocal/text/data in GLOCAL_TEXT_DATA), or leave the option out to use class names")


def subset_keys(dataset: str, classnames: list[str], keys: list[str]) -> list[str] | None:
    """The CLIP-D keys of a subset of the text dataset's classes (a folder of some ImageNet
    classes, named as the shipped class list names them): each class's key by its index in that
    list. None (align by name) when the classes are not such a subset."""
    full_path = text_data(f"classnames/{dataset}.json")
    if not full_path.exists():
        return None
    index = {name: i for i, name in enumerate(load_classnames(full_path))}
    if len(index) != len(keys) or not all(name in index for name in classnames):
        return None
    return [keys[index[name]] for name in classnames]


def text_inputs(dataset: str, classnames: list[str], keep: list[int] | None = None) -> TextInputs:
    """CuPL / CLIP-D / templates for ``dataset`` from the shared data when present (lenient
    alignment on the full class list, every fallback reported), else the class name alone;
    ``keep`` restricts the result to those class indices."""
    notes = []
    paths = text_paths(dataset)
    cupl_path, clip_d_path, templates_path = paths["cupl"], paths["clip_d"], paths["templates"]
    keys_path = text_data(f"classnames/{dataset}_descriptor_keys.json")
    if cupl_path.exists():
        descriptions, report = align_descriptions(classnames, load_descriptions(cupl_path), LENIENT, source=str(cupl_path))
        notes += [f"cupl: {line}" for line in report.lines()]
    else:
        descriptions = [[c] for c in classnames]
        notes.append("cupl: no description file; each class is described by its name alone")
    if clip_d_path.exists():
        keys = load_classnames(keys_path) if keys_path.exists() else None
        if keys is not None and len(keys) != len(classnames):
            keys = subset_keys(dataset, classnames, keys)
        clip_d, report = align_descriptions(classnames, load_descriptions(clip_d_path), LENIENT, keys=keys, source=str(clip_d_path))
        notes += [f"clip_d: {line}" for line in report.lines()]
    else:
        clip_d = [[c] for c in classnames]
        notes.append("clip_d: no descriptor file; each class is described by its name alone")
    templates = load_templates(templates_path) if templates_path.exists() else ["a photo of a {}.", "a picture of a {}."]
    awt, awt_template = awt_inputs(dataset, classnames, notes)
    if keep is not None:
        descriptions = [descriptions[i] for i in keep]
        clip_d = [clip_d[i] for i in keep]
        awt = None if awt is None else [awt[i] for i in keep]
    return TextInputs(descriptions, clip_d, templates, notes, awt, awt_template)


def awt_inputs(dataset: str, classnames: list[str], notes: list[str]) -> tuple[list[list[str]] | None, str]:
    """AWT's description file for ``dataset`` aligned to the classes (None where it has none:
    AWT then reads the CuPL descriptions, said in ``notes``) and its prompt template."""
    path = text_data(f"descriptions/awt/{dataset}.json")
    templates_path = text_data("awt_templates.json")
    templates = json.loads(read_text_file(templates_path)) if templates_path.exists() else {}
    template = templates.get(dataset, AWT_DEFAULT_TEMPLATE)
    if not path.exists():
        notes.append(f"awt: no AWT description file for {dataset!r}; AWT reads its CuPL descriptions")
        return None, template
    awt, report = align_descriptions(classnames, load_descriptions(path), LENIENT, source=str(path))
    notes.extend(f"awt: {line}" for line in report.lines())
    return awt, template
