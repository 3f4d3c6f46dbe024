"""Scoring within a memory budget: every method chunked equals the unchunked formula, and no
method materialises an (images x classes x sentences) tensor.

The references below are the straightforward whole-tensor forms of the formulas (what glocal
computed before chunking), on random tensors with ragged description lists."""

import dataclasses

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from glocal.methods.budget import BudgetError, ScoreShape, parse_memory
from glocal.config import ABSConfig, AWTConfig, LGCAConfig, NoConfig, WCAConfig
from glocal.kinds.features import ImageFeatures
from glocal.methods.soft_matching import plan_chunks, soft_matching_scores
from glocal.methods import get_method, method_names
from glocal.run.plan import MethodRun, check_memory
from glocal.text.bank import Padded, TextBank

B, N, C, D, M_MAX = 6, 5, 11, 16, 9


def unit(*shape, generator):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=generator), dim=-1)


def ragged(generator, classes=C):
    """Per-class lists of 1..M_MAX unit sentences (ragged, so padding is exercised)."""
    lengths = torch.randint(1, M_MAX + 1, (classes,), generator=generator).tolist()
    return Padded.from_lists([unit(k, D, generator=generator) for k in lengths])


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(7)
    features = ImageFeatures(full=unit(B, D, generator=g), crops={
        "raw": unit(B, N, D, generator=g), "feat": unit(B, N, D, generator=g), "wca": unit(B, N, D, generator=g),
        "lgca": [unit(B, N, D, generator=g), unit(B, 2, D, generator=g)], "views": unit(B, N, D, generator=g),
        "bifta": kept_crops(g, B, N)}, image_ids=[f"img{i}" for i in range(B)])
    bank = TextBank(classnames=[str(c) for c in range(C)], prompts=unit(C, D, generator=g), templates=unit(C, 4, D, generator=g),
                    descriptions=ragged(g), clip_d=ragged(g), waffle=ragged(g), awt=ragged(g))
    return features, bank


def kept_crops(generator, images, crops):
    """BiFTA's kept crops: unit rows, then zero rows past each image's kept count."""
    out = unit(images, crops, D, generator=generator)
    for i, kept in enumerate(torch.randint(1, crops + 1, (images,), generator=generator).tolist()):
        out[i, kept:] = 0
    return out


def soft_matching_reference(crops, text, temperature):
    """The whole (B, n, C, M) tensor, softmax over all real (class, sentence) pairs per crop."""
    s = torch.einsum("bnd,cmd->bncm", crops, text.emb) / temperature
    b, n, c, m = s.shape
    p = torch.softmax(s.masked_fill(~text.mask, float("-inf")).reshape(b, n, c * m), dim=-1).reshape(b, n, c, m)
    return (p * s.masked_fill(~text.mask, 0.0)).sum(dim=(1, 3))


def mean_similarity_reference(full, text):
    sims = torch.einsum("bd,cmd->bcm", full, text.emb)
    mask = text.mask.float()
    return (sims * mask).sum(-1) / mask.sum(-1)


def config_for_test(name, crops=N):
    spec = get_method(name)
    if spec.config_cls is LGCAConfig:
        return LGCAConfig(n_crops=crops, steps=1, top_k=2)
    if spec.config_cls is None:
        return NoConfig()
    if spec.config_cls is AWTConfig:  # the first 3 descriptions: one image's transport fits the smallest budgets here
        return AWTConfig(n_crops=crops, n_descriptions=3)
    has_crops = "n_crops" in {f.name for f in dataclasses.fields(spec.config_cls)}
    return spec.config_cls(n_crops=crops) if has_crops else spec.config_cls()


@pytest.mark.parametrize("temperature", [0.03, 0.005, 1.0])  # 0.005: the exact-maximum path
@pytest.mark.parametrize("memory,tile", [(4_000, 16), (20_000, 64), (100_000, 1_000), (2**30, 2**18)])
def test_soft_matching_chunked_equals_unchunked(data, temperature, memory, tile):
    features, bank = data
    crops = torch.cat([features.need("raw"), features.need("feat")], dim=1)
    expected = soft_matching_reference(crops, bank.descriptions, temperature)
    actual = soft_matching_scores(crops, bank.descriptions, temperature, memory, tile)
    scale = expected.abs().max()
    assert torch.allclose(actual, expected, rtol=0, atol=1e-5 * scale), (actual - expected).abs().max()  # float32 round-off


def test_chunk_plans_cover_the_range():
    """The sizes the equality test runs at really are different chunkings (not all one chunk)."""
    plans = {plan_chunks(B, 2 * N, C, M_MAX, memory, tile) for memory, tile in [(4_000, 16), (20_000, 64), (100_000, 1_000), (2**30, 2**18)]}
    assert (1, 1) in plans and (B, C) in plans and len(plans) >= 3


def test_padding_slots_take_no_mass_even_when_not_zero(data):
    """Padding holding a copy of a crop would dominate the softmax if it were not masked."""
    features, bank = data
    crops = features.need("raw")
    text = bank.descriptions
    polluted = Padded(torch.where(text.mask[..., None], text.emb, crops[0, 0]), text.mask)
    assert torch.allclose(soft_matching_scores(crops, polluted, 0.03, 10_000, 32), soft_matching_reference(crops, text, 0.03), atol=1e-4)


@pytest.mark.parametrize("memory", [6_000, 50_000, 2**30])
@pytest.mark.parametrize("name", method_names())
def test_every_method_equals_its_unchunked_form(data, name, memory):
    """Each method at several budgets against the whole-tensor formulas (ABS soft/hard, CLIP-D
    and Waffle as means of cosines) or, for methods with no sentence axis to chunk, the same
    method at an unlimited budget."""
    features, bank = data
    config = config_for_test(name)
    actual = get_method(name).score(features, bank, config, memory)
    if name == "abs":
        expected = soft_matching_reference(torch.cat([features.need("raw"), features.need("feat")], 1), bank.descriptions.first(config.n_descriptions), 0.03)
    elif name in ("clip_d", "waffle"):
        expected = mean_similarity_reference(features.full, getattr(bank, name))
    else:
        expected = get_method(name).score(features, bank, config, 2**40)
    assert actual.shape == (B, C)
    assert torch.allclose(actual, expected, atol=1e-5 * max(1.0, float(expected.abs().max())))


def test_abs_without_soft_matching_equals_mean_of_cosines(data):
    features, bank = data
    crops = torch.cat([features.need("raw"), features.need("feat")], 1)
    cos = torch.einsum("bnd,cmd->bncm", crops, bank.descriptions.emb)
    mask = bank.descriptions.mask
    expected = ((cos * mask).sum(-1) / mask.sum(-1)).mean(1)
    assert torch.allclose(get_method("abs").score(features, bank, ABSConfig(n_crops=N, soft_matching=False)), expected, atol=1e-6)


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("name", method_names())
def test_no_method_materialises_images_by_classes_by_sentences(name):
    """A shard-sized case where (images x classes x sentences) is far larger than the inputs: the
    largest tensor any op makes must stay below it (and, for a chunked method, within the budget).
    Fails for the whole-tensor einsum forms of ABS, CLIP-D and Waffle."""
    g = torch.Generator().manual_seed(3)
    images, crops, classes, sentences = 64, 6, 200, 30
    lists = Padded.from_lists([unit(sentences, D, generator=g) for _ in range(classes)])
    features = ImageFeatures(full=unit(images, D, generator=g), crops={
        "raw": unit(images, crops, D, generator=g), "feat": unit(images, crops, D, generator=g),
        "wca": unit(images, crops, D, generator=g), "lgca": [unit(images, crops, D, generator=g), unit(images, 2, D, generator=g)],
        "views": unit(images, crops, D, generator=g), "bifta": kept_crops(g, images, crops)}, image_ids=[f"i{i}" for i in range(images)])
    bank = TextBank(classnames=[str(c) for c in range(classes)], prompts=unit(classes, D, generator=g), templates=unit(classes, 3, D, generator=g),
                    descriptions=lists, clip_d=lists, waffle=lists, awt=lists)
    spec = get_method(name)
    config = config_for_test(name, crops)
    memory = 400_000  # bytes: 100k floats; (images, classes, sentences) is 384k floats, times crops 2.3M
    with LargestTensor() as probe:
        scores = spec.score(features, bank, config, memory)
    assert scores.shape == (images, classes)
    text_side = classes * sentences * D  # the bank itself (inputs) may be reshaped or copied once
    assert probe.largest <= max(text_side, memory // 4) < images * classes * sentences, (name, probe.largest)


def test_a_budget_too_small_fails_before_compute_with_the_remedy():
    run = MethodRun(get_method("abs"), ABSConfig())
    shape = ScoreShape(classes=1000, sentences={"descriptions": 50}, crops={})
    with pytest.raises(BudgetError, match=r"abs: its smallest scoring chunk needs .* raise --score-memory to at least"):
        check_memory([run], shape, 100_000)
    check_memory([run], shape, parse_memory("256M"))  # the default fits ImageNet's 1000 classes x 50 sentences x 120 crops
    check_memory([MethodRun(get_method("clip_d"), NoConfig())], shape, 1)  # no sentence axis held: fits any budget


@pytest.mark.parametrize("text,expected", [("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)), ("300000", 300000), (None, 256 * 2**20)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "0"])
def test_parse_memory_rejects_nonsense(text):
    with pytest.raises(ValueError, match="--score-memory"):
        parse_memory(text)


def test_wca_and_lgca_forms_unchanged_by_budget(data):
    features, bank = data
    for name, config in (("wca", WCAConfig(n_crops=N, form="paper")), ("wca", WCAConfig(n_crops=N)), ("lgca", config_for_test("lgca"))):
        scores = get_method(name).score(features, bank, config, 1)
        assert torch.isfinite(scores).all() and torch.equal(scores, get_method(name).score(features, bank, config, 2**40))
