"""AWT (#29): its scores equal the official evaluate.py written out for one image at a time (the
(N, C, C) scatter of get_entropy_weight, the Sinkhorn loop, the transport sum); each central
formula changed moves the scores; chunked scoring equals unchunked and one image over the budget
is refused before compute; its prompts follow the official format; its views are ZERO's stream,
shared in one run."""

import torch
import torch.nn.functional as F

import pytest

from glocal.config import AWTConfig, ViewsConfig
from glocal.kinds.features import ImageFeatures
from glocal.methods.awt import awt_scores, replaced_entropy
from glocal.methods.budget import BudgetError
from glocal.text.bank import Padded


def official_awt(image_features: torch.Tensor, text_features: torch.Tensor, n_prompt: int, scale: float = 100.0) -> torch.Tensor:
    """MCG-NJU/AWT evaluate.py for one image: image_features (n_views, D), text_features
    (C * n_prompt, D) class by class -> (C,) scores. Written from the official code, loops and all."""
    output = scale * image_features @ text_features.t()
    n_views = image_features.shape[0]
    output = output.view(n_views, -1, n_prompt).permute(0, 2, 1).contiguous()  # n_view x n_prompt x c

    def batch_entropy(logits):
        return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)

    image_entropy = batch_entropy(output.mean(1))
    image_weights = F.softmax(-image_entropy / 0.5, dim=-1)
    _, n_des, n_cls = output.shape
    anchor = output[0].mean(0)[None, None, :].repeat(n_des, n_cls, 1)
    output_des = output[0].unsqueeze(-1)
    scatter_indices = torch.arange(n_cls)[None, :, None].repeat(n_des, 1, 1)
    anchor.scatter_(dim=2, index=scatter_indices, src=output_des)
    text_entropy = batch_entropy(anchor)
    text_weights = F.softmax(-text_entropy.t() / 0.5, dim=-1)

    sim = (output / scale).permute(2, 0, 1)
    kernel = torch.exp(-(1.0 - sim) / 0.1)
    r, c = torch.ones_like(image_weights), torch.ones_like(text_weights)
    for _ in range(100):
        r0 = r
        r = image_weights / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = text_weights / torch.matmul(kernel.permute(0, 2, 1).contiguous(), r.unsqueeze(-1)).squeeze(-1)
        if (r - r0).abs().mean().item() < 1e-2:
            break
    plan = (torch.matmul(r.unsqueeze(-1), c.unsqueeze(-2)) * kernel).permute(1, 2, 0)
    return torch.sum(plan * output, dim=(0, 1))


class Bank:
    def __init__(self, padded):
        self.padded = padded

    def need(self, name):
        assert name == "awt"
        return self.padded


def fixture(images=3, views=6, classes=5, prompts=4, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = F.normalize(torch.randn(images, 1, dim, generator=g), dim=-1)
    feats = F.normalize(base + 0.5 * torch.randn(images, views, dim, generator=g), dim=-1)
    feats[:, 0] = base[:, 0]
    text = F.normalize(torch.randn(classes, 1, dim, generator=g) + 0.4 * torch.randn(classes, prompts, dim, generator=g), dim=-1)
    return feats, text


def ours(feats, text, config=None, memory=2**28):
    config = config or AWTConfig(n_crops=feats.shape[1] - 1, n_descriptions=text.shape[1] - 1)
    features = ImageFeatures(full=feats[:, 0], crops={"views": feats[:, 1:]})
    mask = torch.ones(text.shape[:2], dtype=torch.bool)
    return awt_scores(features, Bank(Padded(text, mask)), config, memory=memory)


def test_awt_equals_the_official_code():
    feats, text = fixture()
    expected = torch.stack([official_awt(f, text.reshape(-1, text.shape[-1]), text.shape[1]) for f in feats])
    assert torch.allclose(ours(feats, text), expected, atol=1e-3), (ours(feats, text) - expected).abs().max()
    # the argmax is not that of plain CLIP on the mean prompt for every image (the weights and plan matter)
    plain = 100 * feats[:, 0] @ F.normalize(text.mean(1), dim=-1).T
    assert not torch.allclose(ours(feats, text).softmax(-1), plain.softmax(-1), atol=1e-3)


def test_the_replaced_entropy_closed_form_equals_the_scatter():
    g = torch.Generator().manual_seed(1)
    anchor = 30 * torch.randn(2, 7, generator=g)
    anchor[0, 3] = 200.0  # one class far ahead: the subtraction the closed form avoids would cancel
    values = 30 * torch.randn(2, 7, 4, generator=g)
    expected = torch.empty(2, 7, 4)
    for b in range(2):
        for c in range(7):
            for n in range(4):
                row = anchor[b].double().clone()
                row[c] = values[b, c, n]
                expected[b, c, n] = -(row.softmax(-1) * row.log_softmax(-1)).sum()
    assert torch.allclose(replaced_entropy(anchor, values), expected, atol=1e-6)


@pytest.mark.parametrize("change", ["image_temperature", "text_temperature", "ot_epsilon", "sinkhorn_iterations"])
def test_each_central_formula_moves_the_scores(change):
    """A changed weight temperature, transport regularisation or a transport cut to one step each
    gives other scores: none of them is dead code."""
    feats, text = fixture(seed=2)
    base = AWTConfig(n_crops=5, n_descriptions=3)
    import dataclasses

    value = {"image_temperature": 5.0, "text_temperature": 5.0, "ot_epsilon": 1.0, "sinkhorn_iterations": 1}[change]
    moved = ours(feats, text, dataclasses.replace(base, **{change: value}))
    assert not torch.allclose(moved, ours(feats, text, base), atol=1e-4)


def test_padded_prompts_weigh_nothing():
    """A class with fewer descriptions (padded in the bank): whatever the padding holds, the
    scores are the same, and they differ from treating the padding as prompts."""
    feats, text = fixture(classes=3, prompts=4, seed=3)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1, 2:] = False
    features = ImageFeatures(full=feats[:, 0], crops={"views": feats[:, 1:]})
    config = AWTConfig(n_crops=5, n_descriptions=3)
    zeros = text.clone()
    zeros[1, 2:] = 0
    garbage = text.clone()
    garbage[1, 2:] = F.normalize(torch.randn(2, text.shape[-1], generator=torch.Generator().manual_seed(9)), dim=-1)
    padded = awt_scores(features, Bank(Padded(zeros, mask)), config)
    assert torch.isfinite(padded).all()
    # equal up to float32 round-off (the padding shifts the entropies' float64 offset by ulps,
    # which can move a Sinkhorn stop by one iteration: ~1e-5 relative)
    assert torch.allclose(padded, awt_scores(features, Bank(Padded(garbage, mask)), config), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(padded, awt_scores(features, Bank(Padded(garbage, torch.ones(3, 4, dtype=torch.bool))), config), atol=1e-2)


def test_chunked_scoring_equals_unchunked_and_too_small_a_budget_is_refused():
    feats, text = fixture(images=7)
    config = AWTConfig(n_crops=5, n_descriptions=3)
    one_image = 3 * text.shape[0] * feats.shape[1] * text.shape[1] * 4
    whole = ours(feats, text, config, memory=2**28)
    for memory in (one_image, 3 * one_image):
        chunked = ours(feats, text, config, memory=memory)  # the same up to the BLAS's summation order
        assert torch.allclose(chunked, whole, atol=1e-4, rtol=0) and torch.equal(chunked.argmax(1), whole.argmax(1))
    with pytest.raises(BudgetError, match="awt"):
        ours(feats, text, config, memory=one_image - 1)


def test_awt_prompts_follow_the_official_format():
    from glocal.text.dataset_text import text_inputs
    from glocal.text.files import awt_sentences

    assert awt_sentences(["sea_lion"], [["It swims.", "It barks."]], "a photo of a {}") == \
        [["a photo of a sea lion.", "a photo of a sea lion. It swims.", "a photo of a sea lion. It barks."]]
    dtd = text_inputs("dtd", ["banded", "blotchy"])
    assert dtd.awt_template == "a photo of a {}, which is a type of texture, or a type of pattern"
    assert len(dtd.awt[0]) >= 50 and dtd.awt[0][0].startswith("Banded textures")  # AWT's released dtd.json
    imagenet = text_inputs("imagenet", ["tench", "goldfish"])
    assert imagenet.awt is None and any(n.startswith("awt: no AWT description file") for n in imagenet.notes)


def test_awt_shares_zeros_views_in_one_run_and_scores_their_first_fifty():
    from glocal.run.plan import plan_run
    from glocal.run.request import RunRequest

    plan = plan_run(RunRequest.of(dataset="d", model="m", methods=["awt", "zero", "mta"]))
    assert plan.configs["views_config"] == ViewsConfig(n_crops=63)  # one encode of the longest plan
    assert plan.method_configs()["awt"]["n_crops"] == 50
    assert plan_run(RunRequest.of(dataset="d", model="m", methods=["awt"])).configs["views_config"] == ViewsConfig(n_crops=50)
    # other views than a prefix (another seed): still refused
    with pytest.raises(ValueError, match="two different ViewsConfigs"):
        plan_run(RunRequest.of(dataset="d", model="m", methods=["awt", "zero"], overrides={"awt": {"seed": 2}}))
    # the first 50 of 63 views are the 50 views: one draw stream
    from glocal.geometry.plans import view_plan

    assert torch.equal(view_plan(300, 200, ViewsConfig(n_crops=63), "x")[:50], view_plan(300, 200, ViewsConfig(n_crops=50), "x"))
