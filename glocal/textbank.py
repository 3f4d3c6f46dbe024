"""The text bank: every text embedding a method may need, per class, as padded tensors.

Built once per (backbone, class list, description sets); methods only index into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from glocal.progress import stage_bar
from glocal.text_kinds import TEXT_KINDS

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


# the built-in sentence sets, each a field of TextBank (registered text kinds go in ``extra``)
TEXT_FIELDS = ("prompts", "templates", "descriptions", "clip_d", "waffle")


@dataclass(frozen=True)
class TextBank:
    classnames: list[str]
    prompts: torch.Tensor | None = None  # (C, D) "a photo of a {c}."
    templates: torch.Tensor | None = None  # (C, T, D) CLIP-E templates
    descriptions: Padded | None = None  # CuPL sentences
    clip_d: Padded | None = None  # CLIP-D descriptor sentences
    waffle: Padded | None = None  # WaffleCLIP random sentences
    extra: dict[str, Padded] = field(default_factory=dict)  # registered text kinds (glocal.text_kinds)

    def need(self, name: str):
        value = self.extra[name] if name in self.extra else getattr(self, name, None)
        if value is None:
            raise ValueError(f"the text bank has no {name!r} embeddings; build it with {name}=...")
        return value

    @property
    def dim(self) -> int:
        """D, the joint embedding size, from whichever embeddings the bank holds."""
        for value in (self.prompts, self.templates, self.descriptions, self.clip_d, self.waffle, *self.extra.values()):
            if value is not None:
                return (value.emb if isinstance(value, Padded) else value).shape[-1]
        raise ValueError("the text bank is empty")


def encode_grouped(encode_text, groups: list[list[str]]) -> list[torch.Tensor]:
    """Encode all sentences of all classes in one batched call, then split back per class."""
    flat = [s for g in groups for s in g]
    emb = encode_text(flat)
    return list(torch.split(emb, [len(g) for g in groups]))


def build_text_bank(
    backbone,
    classnames: list[str],
    *,
    prompts: list[str] | None = None,
    templates: list[list[str]] | None = None,
    descriptions: list[list[str]] | None = None,
    clip_d: list[list[str]] | None = None,
    waffle: list[list[str]] | None = None,
    extra: dict[str, list[list[str]]] | None = None,
) -> TextBank:
    """Encode the given sentence sets (each already aligned to ``classnames``) with ``backbone``;
    ``extra``: registered text kinds' sentences, name -> per class."""
    c = len(classnames)
    extra = extra or {}
    sets = {"prompts": prompts, "templates": templates, "descriptions": descriptions, "clip_d": clip_d, "waffle": waffle, **extra}
    for name, value in sets.items():
        if value is not None and len(value) != c:
            raise ValueError(f"{name}: {len(value)} entries for {c} classes")
    total = sum(len(v) if name == "prompts" else sum(map(len, v)) for name, v in sets.items() if v is not None)
    with stage_bar(total, "text embedding", unit="sentence") as bar:
        def enc(texts: list[str]) -> torch.Tensor:
            # blocks of sentences, so that ImageNet's 160,000 show progress, not minutes of nothing
            out = []
            for start in range(0, len(texts), TEXT_BLOCK):
                out.append(backbone.encode_text(texts[start:start + TEXT_BLOCK]))
                bar.update(len(out[-1]))
            return torch.cat(out) if out else backbone.encode_text([])

        bank = _bank(classnames, enc, **{k: v for k, v in sets.items() if k not in extra})
        bank.extra.update({name: Padded.from_lists(encode_grouped(enc, lists)) for name, lists in extra.items()})
        return bank


def bank_from_sentences(backbone, sets: dict) -> TextBank:
    """The text bank of a run's sentence sets (``glocal.sentence_sets``: ``classnames`` and each
    set the methods need, built-in or registered), encoded with ``backbone``."""
    return build_text_bank(backbone, sets["classnames"], **{name: sets.get(name) for name in TEXT_FIELDS},
                           extra={name: sets[name] for name in TEXT_KINDS if name in sets})


def _bank(classnames, enc, prompts, templates, descriptions, clip_d, waffle) -> TextBank:
    return TextBank(
        classnames=list(classnames),
        prompts=enc(prompts) if prompts is not None else None,
        templates=torch.stack(encode_grouped(enc, templates)) if templates is not None else None,
        descriptions=Padded.from_lists(encode_grouped(enc, descriptions)) if descriptions is not None else None,
        clip_d=Padded.from_lists(encode_grouped(enc, clip_d)) if clip_d is not None else None,
        waffle=Padded.from_lists(encode_grouped(enc, waffle)) if waffle is not None else None,
    )
