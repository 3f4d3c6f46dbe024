"""The sentence sets a run's methods need, aligned to the classes: each registered text kind the
methods need (``glocal.text.kinds``), built from the text dataset's files
(``glocal.text.dataset_text.TextInputs``) or the run's description set, the same for the pipeline's text
stage and the in-process demo."""

from __future__ import annotations

from glocal.text.dataset_text import TextInputs
from glocal.text.kinds import TEXT_KINDS
from glocal.text.kinds import SentenceInputs, build_sentences


def sentence_sets(classnames: list[str], needed: set[str], texts: TextInputs,
                  descriptions: list[list[str]] | None = None, waffle: tuple[str, int] = ("glocal", 1)) -> tuple[dict, list[str]]:
    """{"classnames": ..., kind: sentences per class} for every kind in ``needed`` (errors raised
    here, before any compute), and the notes on how the text files were aligned.
    ``descriptions`` (from a description set) replaces the text dataset's CuPL file; ``waffle``:
    (construction, seed) of the Waffle sentences."""
    notes = [n for n in texts.notes if _note_applies(n, needed, descriptions is not None)]
    inputs = SentenceInputs(texts, descriptions, waffle)
    sets: dict = {"classnames": classnames}
    for name in TEXT_KINDS:  # registration order: the built-ins, then plugins
        if name in needed:
            sets[name] = build_sentences(name, classnames, inputs)
    return sets, notes


# a text file's notes start with the file they are about; each file feeds one text kind
NOTE_KINDS = {"cupl": "descriptions", "clip_d": "clip_d", "awt": "awt"}


def _note_applies(note: str, needed: set[str], own_descriptions: bool) -> bool:
    """Only notes about the files this run reads: none about CuPL's file when the run has its own
    description set or no method needs descriptions, none about CLIP-D's when no method needs it."""
    prefix = note.split(":", 1)[0]
    if prefix in ("cupl", "awt") and own_descriptions:
        return False
    return prefix not in NOTE_KINDS or NOTE_KINDS[prefix] in needed
