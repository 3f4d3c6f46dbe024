"""The built-in text kinds: the sentence sets of CLIP, CLIP-E, CuPL (and ABS, WCA, LGCA), CLIP-D
and Waffle, in the order they are built."""

from __future__ import annotations

from glocal.paths import text_data
from glocal.text.files import awt_sentences, clip_d_sentences, prompt_sentences, template_sentences
from glocal.text.kinds import SentenceInputs, register_text_kind
from glocal.text.waffle import waffle_set


@register_text_kind("prompts", form="one")
def prompts(classnames: list[str], inputs: SentenceInputs) -> list[str]:
    """"a photo of a {c}." per class."""
    return prompt_sentences(classnames)


@register_text_kind("templates", form="fixed")
def templates(classnames: list[str], inputs: SentenceInputs) -> list[list[str]]:
    """CLIP-E: every template of the text dataset filled with the class name."""
    return template_sentences(classnames, inputs.texts.templates)


@register_text_kind("descriptions")
def descriptions(classnames: list[str], inputs: SentenceInputs) -> list[list[str]]:
    """CuPL's descriptions: the run's description set, else the text dataset's CuPL file."""
    return inputs.descriptions if inputs.descriptions is not None else inputs.texts.descriptions


@register_text_kind("clip_d")
def clip_d(classnames: list[str], inputs: SentenceInputs) -> list[list[str]]:
    """CLIP-D: "{c}, which (is/has/etc) {descriptor}." per descriptor of the class."""
    return clip_d_sentences(classnames, inputs.texts.clip_d)


@register_text_kind("waffle")
def waffle(classnames: list[str], inputs: SentenceInputs) -> list[list[str]]:
    """WaffleCLIP: random words and characters, with or beside the CLIP-D descriptors (``inputs.waffle``'s form)."""
    return waffle_set(classnames, inputs.texts.clip_d, *inputs.waffle, text_data("waffle_words.json"))


@register_text_kind("awt")
def awt(classnames: list[str], inputs: SentenceInputs) -> list[list[str]]:
    """AWT: "{template}." then "{template}. {description}" per description, the template AWT's
    for the text dataset; the descriptions the run's description set, else AWT's released file,
    else the text dataset's CuPL file (``TextInputs.awt``)."""
    texts = inputs.texts
    descriptions = inputs.descriptions if inputs.descriptions is not None else texts.awt if texts.awt is not None else texts.descriptions
    return awt_sentences(classnames, descriptions, texts.awt_template)
