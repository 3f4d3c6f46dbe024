"""Registered text kinds: every sentence set a method scores (the prompts, CLIP-E's templates,
CuPL's descriptions, CLIP-D's and Waffle's sentences, a plugin's own) is one ``TextKind`` in
``TEXT_KINDS``. The run's sentence sets are built by looping over the kinds its methods need
(``glocal.text.sentence_sets``), the text stage embeds and stores each, the text bank reloads it in its
kind's form, and a method reads ``bank.need(name)``.

The built-in kinds live in ``glocal.text.builtin_kinds`` (look kinds up here or through ``glocal.kinds``,
which has imported them); a plugin registers its own with ``@register_text_kind(name)`` in its own
module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

# how a kind's sentences are embedded and held:
#   one:    one sentence per class -> (C, D)
#   fixed:  the same number T per class -> (C, T, D)
#   ragged: any number per class -> Padded (C, M, D) with a mask
TextForm = Literal["one", "fixed", "ragged"]


@dataclass(frozen=True)
class SentenceInputs:
    """What a kind builds its sentences from."""

    texts: object  # the text dataset's files, aligned to the classes (glocal.text.dataset_text.TextInputs)
    descriptions: list[list[str]] | None = None  # the run's description set (replaces the text dataset's CuPL file)
    waffle: tuple[str, int] = ("glocal", 1)  # (construction, seed) of the Waffle sentences


@dataclass(frozen=True)
class TextKind:
    name: str
    # (class names, SentenceInputs) -> per class: its sentences (form "one": its one sentence)
    build: Callable[[list[str], SentenceInputs], list]
    form: TextForm = "ragged"


TEXT_KINDS: dict[str, TextKind] = {}


def register_text_kind(name: str, form: TextForm = "ragged") -> Callable[[Callable], Callable]:
    """Decorator: register ``build`` as text kind ``name``."""

    def wrap(build: Callable) -> Callable:
        if name in TEXT_KINDS or name == "classnames" or not name.isidentifier():
            raise ValueError(f"text kind name {name!r} is taken or not a plain identifier (kinds: {', '.join(TEXT_KINDS)})")
        TEXT_KINDS[name] = TextKind(name, build, form)
        return build

    return wrap


def text_kinds() -> frozenset[str]:
    """Every text kind a method may need (``glocal.kinds.text_kinds`` has the built-ins registered)."""
    return frozenset(TEXT_KINDS)


def text_form(name: str) -> TextForm:
    """A stored set's form (a set whose kind is no longer registered reads as ragged)."""
    return TEXT_KINDS[name].form if name in TEXT_KINDS else "ragged"


def build_sentences(name: str, classnames: list[str], inputs: SentenceInputs) -> list:
    """A kind's sentences, checked: one entry per class, none empty."""
    kind = TEXT_KINDS[name]
    sentences = kind.build(classnames, inputs)
    if len(sentences) != len(classnames) or any(not entry for entry in sentences):
        what = "sentence" if kind.form == "one" else "non-empty list of sentences"
        raise ValueError(f"text kind {name!r}: expected a {what} for each of {len(classnames)} classes")
    return list(sentences) if kind.form == "one" else [list(entry) for entry in sentences]


# the built-in text kinds, registered whenever the registry is imported (in their build order)
from glocal.text import builtin_kinds  # noqa: E402, F401
