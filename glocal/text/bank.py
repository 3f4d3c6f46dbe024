"""The text bank: every text embedding a method may need, per class, as padded tensors.

Built once per (backbone, class list, description sets); methods only index into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glocal.progress import stage_bar
from glocal.text.kinds import TEXT_KINDS
from glocal.text.kinds import text_form

TEXT_BLOCK = 4096  # sentences per progress step (the backbone batches within it)


@dataclass(frozen=True)
class Padded:
    """Variable-length per-class embeddings: ``emb (C, M, D)``, ``mask (C, M)`` (True = real)."""

    emb: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_lists(cls, per_class: list[torch.Tensor]) -> "Padded":
        if not per_class or any(t.shape[0] == 0 for t in per_class):
            raise ValueError("every class needs at least one sentence embedding")
        c, m, d = len(per_class), max(t.shape[0] for t in per_class), per_class[0].shape[1]
        emb = torch.zeros(c, m, d)
        mask = torch.zeros(c, m, dtype=torch.bool)
        for i, t in enumerate(per_class):
            emb[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return cls(emb, mask)

    def first(self, m: int) -> "Padded":
        """Only the first ``m`` sentences of each class (ABS's M)."""
        return Padded(self.emb[:, :m], self.mask[:, :m])

    def means(self) -> torch.Tensor:
        """(C, D): the plain mean of each class's real sentence embeddings (not renormalised), so
        that f . means()[c] = mean_j cos(f, t_cj) without an (images, classes, sentences) tensor."""
        weights = self.mask.to(self.emb.dtype).unsqueeze(-1)
        return (self.emb * weights).sum(1) / weights.sum(1)

    def class_means(self) -> torch.Tensor:
        """(C, D): normalise(mean of each class's normalised sentence embeddings)."""
        weights = self.mask.float().unsqueeze(-1)
        mean = (self.emb * weights).sum(1) / weights.sum(1)
        return torch.nn.functional.normalize(mean, dim=-1)


class TextBank:
    """A run's class text embeddings by text kind (``glocal.text.kinds``), each in its kind's form:
    ``need("prompts")`` (C, D), ``need("templates")`` (C, T, D), ``need("descriptions")`` and
    every ragged kind a ``Padded`` (C, M, D). ``TextBank(classnames, prompts=..., descriptions=...)``
    or ``TextBank(classnames, {kind: value})``."""

    def __init__(self, classnames: list[str], sets: dict | None = None, **by_kind):
        self.classnames = list(classnames)
        self.sets = {name: value for name, value in {**(sets or {}), **by_kind}.items() if value is not None}

    def need(self, name: str):
        if name not in self.sets:
            raise ValueError(f"the text bank has no {name!r} embeddings; build it with {name}=...")
        return self.sets[name]

    def __getattr__(self, name: str):
        """``bank.descriptions``: a kind's embeddings, None when the bank has none."""
        if name.startswith("_") or name in ("classnames", "sets") or name not in TEXT_KINDS:
            raise AttributeError(name)
        return self.__dict__["sets"].get(name)

    @property
    def dim(self) -> int:
        """D, the joint embedding size, from whichever embeddings the bank holds."""
        for value in self.sets.values():
            return (value.emb if isinstance(value, Padded) else value).shape[-1]
        raise ValueError("the text bank is empty")


def encode_grouped(encode_text, groups: list[list[str]]) -> list[torch.Tensor]:
    """Encode all sentences of all classes in one batched call, then split back per class."""
    flat = [s for g in groups for s in g]
    emb = encode_text(flat)
    return list(torch.split(emb, [len(g) for g in groups]))


def build_text_bank(backbone, classnames: list[str], sets: dict | None = None, **by_kind) -> TextBank:
    """Encode the given sentence sets (kind -> sentences, each already aligned to ``classnames``)
    with ``backbone``, each in its kind's form (``glocal.text.kinds.text_form``)."""
    c = len(classnames)
    sets = {name: value for name, value in {**(sets or {}), **by_kind}.items() if value is not None and name != "classnames"}
    for name, value in sets.items():
        if len(value) != c:
            raise ValueError(f"{name}: {len(value)} entries for {c} classes")
    total = sum(len(v) if text_form(name) == "one" else sum(map(len, v)) for name, v in sets.items())
    with stage_bar(total, "text embedding", unit="sentence") as bar:
        def enc(texts: list[str]) -> torch.Tensor:
            # blocks of sentences, so that ImageNet's 160,000 show progress, not minutes of nothing
            out = []
            for start in range(0, len(texts), TEXT_BLOCK):
                out.append(backbone.encode_text(texts[start:start + TEXT_BLOCK]))
                bar.update(len(out[-1]))
            return torch.cat(out) if out else backbone.encode_text([])

        return TextBank(classnames, {name: FORMS[text_form(name)](enc, value) for name, value in sets.items()})


# a kind's form -> how its sentences are encoded and held
FORMS = {
    "one": lambda enc, sentences: enc(sentences),  # (C, D)
    "fixed": lambda enc, groups: torch.stack(encode_grouped(enc, groups)),  # (C, T, D)
    "ragged": lambda enc, groups: Padded.from_lists(encode_grouped(enc, groups)),  # (C, M, D) + mask
}


def bank_from_sentences(backbone, sets: dict) -> TextBank:
    """The text bank of a run's sentence sets (``glocal.text.sentence_sets``: ``classnames`` and each
    kind the methods need), encoded with ``backbone``."""
    return build_text_bank(backbone, sets["classnames"], sets)
