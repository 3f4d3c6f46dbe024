"""The sentence sets a run's methods need, aligned to the classes: built from the text dataset's
files (``glocal.demo_data.TextInputs``) or a stored description set, the same for the pipeline's
text stage and the in-process demo."""

from __future__ import annotations

from glocal.demo_data import SHARED_DATA, TextInputs
from glocal.text import clip_d_sentences, prompt_sentences, template_sentences
from glocal.text_kinds import TEXT_KINDS, build_sentences
from glocal.waffle_text import waffle_set


def sentence_sets(classnames: list[str], needed: set[str], texts: TextInputs,
                  descriptions: list[list[str]] | None = None, waffle: tuple[str, int] = ("glocal", 1)) -> tuple[dict, list[str]]:
    """Every sentence set the methods need, aligned to the classes (errors raised here, before
    any compute). ``descriptions`` (from a description set) replaces the text dataset's CuPL file;
    ``waffle``: (construction, seed) of the Waffle sentences."""
    notes = [n for n in texts.notes if descriptions is None or not n.startswith("cupl:")]
    sets: dict = {"classnames": classnames}
    if "prompts" in needed:
        sets["prompts"] = prompt_sentences(classnames)
    if "templates" in needed:
        sets["templates"] = template_sentences(classnames, texts.templates)
    if "descriptions" in needed:
        sets["descriptions"] = descriptions if descriptions is not None else texts.descriptions
    if "clip_d" in needed:
        sets["clip_d"] = clip_d_sentences(classnames, texts.clip_d)
    if "waffle" in needed:
        sets["waffle"] = waffle_set(classnames, texts.clip_d, *waffle, SHARED_DATA / "waffle_words.json")
    for name in sorted(needed & set(TEXT_KINDS)):  # registered text kinds
        sets[name] = build_sentences(name, classnames, texts)
    return sets, notes
