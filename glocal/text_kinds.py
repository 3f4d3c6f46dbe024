"""Registered text kinds: a method that needs a new kind of sentence set registers it here (one
decorator in its own module): the flow builds its sentences, the text stage embeds and stores
them, the text bank reloads them, and the method reads ``bank.need(name)`` (C, M, D), with no
other change. The built-in kinds keep their own fields on ``TextBank``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

BUILT_IN_TEXT_KINDS = frozenset({"prompts", "templates", "descriptions", "clip_d", "waffle"})


@dataclass(frozen=True)
class TextKind:
    name: str
    # (class names, the text dataset's inputs: glocal.demo_data.TextInputs) -> sentences per class
    # (each class at least one)
    build: Callable[[list[str], object], list[list[str]]]


TEXT_KINDS: dict[str, TextKind] = {}


def register_text_kind(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``build`` as text kind ``name``."""

    def wrap(build: Callable) -> Callable:
        if name in TEXT_KINDS:
            raise ValueError(f"text kind {name!r} is registered twice")
        if name in BUILT_IN_TEXT_KINDS or name == "classnames" or not name.isidentifier():
            raise ValueError(f"text kind name {name!r} is taken or not a plain identifier (built-in: {', '.join(sorted(BUILT_IN_TEXT_KINDS))})")
        TEXT_KINDS[name] = TextKind(name, build)
        return build

    return wrap


def text_kinds() -> frozenset[str]:
    """Every text kind a method may need: the built-in ones and the registered ones."""
    return BUILT_IN_TEXT_KINDS | frozenset(TEXT_KINDS)


def build_sentences(name: str, classnames: list[str], texts) -> list[list[str]]:
    """A registered kind's sentences, checked: one non-empty list per class."""
    lists = TEXT_KINDS[name].build(classnames, texts)
    if len(lists) != len(classnames) or any(not sentences for sentences in lists):
        raise ValueError(f"text kind {name!r}: expected a non-empty list of sentences for each of {len(classnames)} classes")
    return [list(sentences) for sentences in lists]
