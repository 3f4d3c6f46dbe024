"""WaffleCLIP's random descriptor sentences, in both constructions a preset can ask for.

"glocal" (``glocal.text.files.waffle_sentences``): per class as many descriptors as it has CLIP-D ones.
"official": the ``construct_random`` of the WCA and ABS code (after WaffleCLIP's), which made the
Waffle rows of the ABS tables: one set of 15 random-word and 15 random-character descriptors,
shaped by the class names' statistics, shared by every class. Our own implementation of its rules;
the draws come from glocal's seeded generator, not numpy's global state.
"""

from __future__ import annotations

import math
from pathlib import Path

from glocal.seeding import generator_for
from glocal.text.files import clip_d_sentence, load_waffle_words, torch_randint, waffle_sentences

# used when the WaffleCLIP word list (shared data) is not on this machine
FALLBACK_WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]
OFFICIAL_PAIRS = 15  # random-word and random-character descriptors, 15 of each


def waffle_words(path: Path) -> list[str]:
    return load_waffle_words(path) if path.exists() else list(FALLBACK_WORDS)


def official_shapes(classnames: list[str]) -> dict:
    """The lengths construct_random fits to the class names: words per word-descriptor, letters
    per word, and the character-descriptor's pattern ("aaa aaa": groups of random characters)."""
    words = [name.split(" ") for name in classnames]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    # Python's round() rounds half to even, as numpy's np.round does in the official code
    n_words = max(round(mean([len(w) for w in words])), 1)
    word_length = round(mean([mean([len(x) for x in w]) for w in words]))
    groups = round(mean([name.count(" ") for name in classnames])) + 1
    chars = math.ceil(mean([max(len(x) for x in w) for w in words]))
    chars += groups - chars % groups
    return {"words": n_words, "word_length": word_length, "pattern": " ".join(["a" * (chars // groups)] * groups)}


def official_descriptors(classnames: list[str], descriptors: list[list[str]], words: list[str], seed: int) -> list[str]:
    """The 30 shared descriptors, alternately ``n`` random words (cut to the names' mean word
    length) and random characters (drawn from those the CLIP-D descriptors use) in the pattern's
    groups, joined by ", "."""
    shapes = official_shapes(classnames)
    cut = [w[: shapes["word_length"]] for w in words]
    characters = sorted(set("".join(d for ds in descriptors for d in ds)) - {" ", ",", "."}) or list("abcdefghijklmnopqrstuvwxyz")
    g = generator_for(seed, "waffle-official", "descriptors")
    out = []
    for _ in range(OFFICIAL_PAIRS):
        out.append(" ".join(cut[i] for i in torch_randint(len(cut), shapes["words"], g)))
        picks = iter(torch_randint(len(characters), shapes["pattern"].count("a"), g))
        out.append("".join(", " if c == " " else characters[next(picks)] for c in shapes["pattern"]))
    return out


def waffle_set(classnames: list[str], clip_d_lists: list[list[str]], construction: str, seed: int, words_path: Path) -> list[list[str]]:
    """Waffle's sentences per class for ``construction`` ("glocal" or "official")."""
    words = waffle_words(words_path)
    if construction == "glocal":
        return waffle_sentences(classnames, [len(d) for d in clip_d_lists], words, seed)
    if construction != "official":
        raise ValueError(f"unknown waffle construction {construction!r}; expected 'glocal' or 'official'")
    shared = official_descriptors(classnames, clip_d_lists, words, seed)
    return [[f"A photo of a {clip_d_sentence(name, d)}." for d in shared] for name in classnames]
