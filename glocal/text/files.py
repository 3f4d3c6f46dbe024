"""Class lists, prompt templates and description sets as data, and their alignment to classes.

Real description files do not line up with class lists: ImageNet has two duplicated names
(998 keys for 1000 classes), the CLIP-D ImageNet file is keyed by a different name list, the
Places365 CLIP-D keys differ from the class list for 219 classes (but follow its order), and some
classes have no descriptions at all. ``align_descriptions`` never papers over this silently: each
case is an error naming the classes and the remedy, unless an explicit policy option asks for the
documented fallback, and the fallbacks taken are returned in an ``AlignmentReport``.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from glocal.paths import read_text_file
from glocal.seeding import generator_for

CLIP_PROMPT = "a photo of a {}."


def _load_json(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(read_text_file(path))  # gzip-compressed (the shipped files) or not
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def _load_list(path: str | os.PathLike, what: str, dataset: str | None):
    """A JSON list, a JSON object keyed by dataset name (CLIP_benchmark's ``--custom_classname_file``
    / ``--custom_template_file``: the entry for ``dataset``), or a text file with one entry per line
    (CLIP_benchmark's ``classnames.txt`` and templates file)."""
    path = Path(path)
    if path.suffix.lower() in (".txt", ".text", ""):
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    data = _load_json(path)
    if isinstance(data, dict):
        if dataset is None or dataset not in data:
            raise ValueError(f"{path}: a file keyed by dataset name needs an entry for {dataset!r} (has: {', '.join(list(data)[:8])}); "
                             f"or give a plain JSON list of {what}")
        data = data[dataset]
    return data


def load_classnames(path: str | os.PathLike, dataset: str | None = None) -> list[str]:
    """Class names in label-index order: a JSON list, one name per line (.txt), or CLIP_benchmark's
    JSON object keyed by dataset name (the entry for ``dataset``)."""
    names = _load_list(path, "class names", dataset)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise ValueError(f"{path}: expected a non-empty JSON list of class-name strings (or one name per line in a .txt file)")
    return names


def load_templates(path: str | os.PathLike, dataset: str | None = None) -> list[str]:
    """Prompt templates, each with one ``{}`` or CLIP_benchmark's ``{c}`` for the class name: a JSON
    list, one per line (.txt), or a JSON object keyed by dataset name."""
    from glocal.data.clip_benchmark import from_clip_benchmark

    templates = _load_list(path, "templates", dataset)
    if not isinstance(templates, list) or not templates:
        raise ValueError(f"{path}: expected a non-empty JSON list of template strings (or one per line in a .txt file)")
    templates = [from_clip_benchmark(t) if isinstance(t, str) else t for t in templates]
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise ValueError(f"{path}: every template needs exactly one '{{}}' or '{{c}}' for the class name; offending: {bad[:3]}")
    return templates


def load_descriptions(path: str | os.PathLike) -> dict[str, list[str]]:
    """A CuPL / CLIP-D style JSON file: ``{class name: [sentence, ...]}`` (key order kept)."""
    data = _load_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object mapping class names to lists of strings")
    bad = {k: [s for s in v if not isinstance(s, str)] for k, v in data.items()}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        first = next(iter(bad))
        raise ValueError(f"{path}: {len(bad)} class(es) have entries that are not sentences (strings), e.g. {first!r}: "
                         f"{bad[first][:3]!r}; fix the file (every entry a string)")
    return {str(k): list(v) for k, v in data.items()}


# An LLM's refusal, or the chatter around its answer, is not a description of the class.
_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|sorry\b|i (?:can(?:'|no)?t|cannot|won'?t|am unable to)\b|i'm unable to\b"
                      r"|as an ai\b|as a language model\b)", re.IGNORECASE)
_PREAMBLE = re.compile(r"(?::\s*$)|^(?:sure|certainly|of course|absolutely|okay)[!.,]?\s*(?:here(?:'s| are| is| you go)\b.*)?$",
                       re.IGNORECASE)


def chatter(sentence: str) -> str | None:
    """'refusal' or 'preamble' for an LLM's refusal or chatter ("Sure! Here are 3 sentences:"),
    None for a sentence that can describe a class."""
    if _REFUSAL.search(sentence):
        return "refusal"
    if _PREAMBLE.search(sentence):
        return "preamble"
    return None


def normalise_key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


@dataclass(frozen=True)
class DescriptionPolicy:
    """How to align a description file to a class list. Strict by default: every mismatch is an
    error that names the classes. Options choose documented fallbacks instead."""

    # exact: key == class name; normalized: case, '_' and spacing ignored;
    # position: i-th key describes i-th class (needs equal counts; Places365 CLIP-D)
    match: Literal["exact", "normalized", "position"] = "exact"
    on_missing: Literal["error", "classname"] = "error"  # classname: use "{c}" alone
    on_empty: Literal["error", "classname"] = "error"  # classname: use "{c}" alone
    # share: classes with the same name get the same descriptions (ImageNet's two "missile"s)
    on_duplicate: Literal["error", "share"] = "error"


LENIENT = DescriptionPolicy(match="exact", on_missing="classname", on_empty="classname", on_duplicate="share")


@dataclass
class AlignmentReport:
    fell_back_missing: list[str] = field(default_factory=list)
    fell_back_empty: list[str] = field(default_factory=list)
    shared_duplicates: dict[str, list[int]] = field(default_factory=dict)
    unused_keys: list[str] = field(default_factory=list)  # keys that describe no class of the list
    # class -> lines that read like an LLM's refusal or preamble; kept as the file has them (the
    # published numbers were measured with the files as released), reported so a user can see them
    chatter: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        if self.fell_back_missing:
            out.append(f"{len(self.fell_back_missing)} class(es) had no key, used the class name alone: {_sample(self.fell_back_missing)}")
        if self.fell_back_empty:
            out.append(f"{len(self.fell_back_empty)} class(es) had an empty list, used the class name alone: {_sample(self.fell_back_empty)}")
        if self.shared_duplicates:
            dup = ", ".join(f"{n!r} at {idx}" for n, idx in self.shared_duplicates.items())
            out.append(f"duplicate class names share descriptions: {dup}")
        if self.unused_keys:
            out.append(f"{len(self.unused_keys)} key(s) match no class and were ignored: {_sample(self.unused_keys)}")
        if self.chatter:
            out.append(f"{sum(self.chatter.values())} line(s) in {len(self.chatter)} class(es) read like an LLM's refusal or preamble "
                       f"(kept, as the file has them): {_sample(list(self.chatter))}")
        return out


def _sample(names: list[str], n: int = 10) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" ... (+{len(names) - n} more)" if len(names) > n else "")


def duplicate_classes(classnames: list[str]) -> dict[str, list[int]]:
    positions = defaultdict(list)
    for i, name in enumerate(classnames):
        positions[name].append(i)
    return {n: idx for n, idx in positions.items() if len(idx) > 1}


def align_descriptions(
    classnames: list[str],
    descriptions: dict[str, list[str]],
    policy: DescriptionPolicy = DescriptionPolicy(),
    keys: list[str] | None = None,
    source: str = "descriptions",
    remedy: str | None = None,
) -> tuple[list[list[str]], AlignmentReport]:
    """One list of sentences per class, in class order.

    ``keys``: an explicit key per class (e.g. ``imagenet_descriptor_keys.json`` for the CLIP-D
    ImageNet file), looked up with the policy's ``match``. ``remedy``: what a missing or empty
    entry's error tells the caller to do (default: this function's own options; the command
    line passes its flags).
    """
    report = AlignmentReport()
    duplicates = duplicate_classes(classnames)
    if duplicates and keys is None and policy.match != "position":
        if policy.on_duplicate == "error":
            dup = ", ".join(f"{n!r} at {idx}" for n, idx in duplicates.items())
            raise ValueError(
                f"{source}: the class list has duplicate names ({dup}), so name-keyed descriptions "
                "cannot tell them apart. Remedy: pass per-class keys (keys=...), or "
                "on_duplicate='share' to give them the same descriptions."
            )
        report.shared_duplicates = duplicates

    if policy.match == "position":
        if len(descriptions) != len(classnames):
            raise ValueError(
                f"{source}: match='position' needs one key per class, got {len(descriptions)} keys "
                f"for {len(classnames)} classes"
            )
        raw_lists: list[list[str] | None] = list(descriptions.values())
    else:
        lookup_keys = keys if keys is not None else classnames
        if len(lookup_keys) != len(classnames):
            raise ValueError(f"{source}: {len(lookup_keys)} keys given for {len(classnames)} classes")
        table = descriptions
        if policy.match == "normalized":
            table = {}
            for k, v in descriptions.items():
                nk = normalise_key(k)
                if nk in table and table[nk] != v:
                    raise ValueError(f"{source}: keys collide after normalisation: {nk!r}")
                table[nk] = v
            lookup_keys = [normalise_key(k) for k in lookup_keys]
        raw_lists = [table.get(k) for k in lookup_keys]
        wanted = set(lookup_keys)
        report.unused_keys = [k for k in table if k not in wanted]
    report.chatter = {name: n for name, v in zip(classnames, raw_lists) if v and (n := sum(bool(chatter(x.strip())) for x in v))}

    missing = [classnames[i] for i, v in enumerate(raw_lists) if v is None]
    if missing and policy.on_missing == "error":
        hint = " (keys differ but follow the class order: try match='position')" if len(descriptions) == len(classnames) else ""
        raise ValueError(
            f"{source}: no descriptions for {len(missing)} of {len(classnames)} classes: "
            f"{_sample(missing)}{hint}. Remedy: " + (remedy or "fix the keys, pass keys=..., choose "
            "match='normalized'/'position', or on_missing='classname' to use the class name alone.")
        )
    empty = [classnames[i] for i, v in enumerate(raw_lists) if v is not None and not [s for s in v if s.strip()]]
    if empty and policy.on_empty == "error":
        raise ValueError(
            f"{source}: empty description list for {len(empty)} class(es): {_sample(empty)}. "
            "Remedy: " + (remedy or "regenerate them, or on_empty='classname' to use the class name alone.")
        )
    report.fell_back_missing = missing
    report.fell_back_empty = empty
    aligned = []
    for name, sentences in zip(classnames, raw_lists):
        kept = [s.strip() for s in (sentences or []) if s.strip()]
        aligned.append(kept or [name])
    return aligned, report


# --------------------------------------------------------------------------- sentence builders


def prompt_sentences(classnames: list[str], template: str = CLIP_PROMPT) -> list[str]:
    return [template.format(c) for c in classnames]


def template_sentences(classnames: list[str], templates: list[str]) -> list[list[str]]:
    return [[t.format(c) for t in templates] for c in classnames]


def awt_sentences(classnames: list[str], descriptions: list[list[str]], template: str) -> list[list[str]]:
    """AWT's prompts per class (its evaluate.py): the template filled with the class name (its
    underscores as spaces) and a full stop, then that prompt followed by each description."""
    out = []
    for classname, described in zip(classnames, descriptions):
        prompt = template.format(classname.replace("_", " "))
        out.append([prompt + "."] + [f"{prompt}. {d}" for d in described])
    return out


def clip_d_sentence(classname: str, descriptor: str) -> str:
    """Menon & Vondrick's ``make_descriptor_sentence``: a plain ``startswith`` test."""
    if descriptor.startswith("a") or descriptor.startswith("used"):
        return f"{classname}, which is {descriptor}"
    if descriptor.startswith(("has", "often", "typically", "may", "can")):
        return f"{classname}, which {descriptor}"
    return f"{classname}, which has {descriptor}"


def clip_d_sentences(classnames: list[str], descriptors: list[list[str]]) -> list[list[str]]:
    """CLIP-D sentences per class; a class with no descriptors falls back to ``"{c}"`` alone.

    ``descriptors`` comes from ``align_descriptions``, which already turned an empty list into
    ``[classname]`` when asked to; that lone entry becomes the sentence ``"{c}"`` here."""
    out = []
    for name, ds in zip(classnames, descriptors):
        if not ds or ds == [name]:
            out.append([name])
        else:
            out.append([clip_d_sentence(name, d) for d in ds])
    return out


def waffle_sentences(
    classnames: list[str], counts: list[int], words: list[str], seed: int
) -> list[list[str]]:
    """WaffleCLIP: per class, ``counts[c]`` random descriptors (alternately two random words and
    two random character strings of the same lengths), made into CLIP-D sentences. Seeded per
    (seed, class index), so every run draws the same sequences."""
    if not words:
        raise ValueError("waffle needs a non-empty word list")
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for index, (name, count) in enumerate(zip(classnames, counts)):
        g = generator_for(seed, f"class:{index}", "waffle")
        sentences = []
        for j in range(max(count, 1)):
            picks = [words[int(i)] for i in torch_randint(len(words), 2, g)]
            if j % 2 == 1:
                picks = ["".join(letters[int(i)] for i in torch_randint(26, max(len(w), 1), g)) for w in picks]
            sentences.append(clip_d_sentence(name, " ".join(picks)))
        out.append(sentences)
    return out


def torch_randint(high: int, n: int, generator) -> list[int]:
    return torch.randint(0, high, (n,), generator=generator).tolist()


def load_waffle_words(path: str | os.PathLike) -> list[str]:
    words = _load_json(path)
    if not isinstance(words, list) or not words:
        raise ValueError(f"{path}: expected a non-empty JSON list of words")
    return [str(w) for w in words]


