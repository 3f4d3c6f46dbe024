"""ZERO and MTA (#29): their scores against hand-worked and independently written references on
fixed tensors, their augmented views (torchvision's RandomResizedCrop + flip) reproducible per
(seed, image id) and equal, pixel for pixel, to torchvision's own crop, the engine's views equal
to the reference path's, and one kind of views shared by both methods in a run."""

import math

import pytest
import torch
from PIL import Image

from glocal.config import MTAConfig, ViewsConfig, ZeroConfig
from glocal.geometry.plans import view_plan
from glocal.methods.mta import mta_mode
from glocal.methods.zero import RANK_WEIGHT, zero_votes


def _logits(*rows):
    return torch.tensor([rows], dtype=torch.float32)  # (1, V, C)


def test_zero_by_hand():
    # entropy (scale 1) rises down the list: three confident views (one per class), two unconfident
    logits = _logits([10, 0, 0], [0, 9, 0], [0, 0, 8], [1, 0, 0], [0, 0.5, 0])
    # keep 0.6 of 5 -> 3 views vote 1, 1, 1: a three-way tie; the first discarded view (argmax 0) decides
    votes = zero_votes(logits, keep=0.6, logit_scale=1.0)
    assert votes.floor().tolist() == [[2, 1, 1]] and votes.argmax().item() == 0
    # keep 0.8 -> 4 views: class 0 has two votes, no tie
    assert zero_votes(logits, keep=0.8, logit_scale=1.0).floor().tolist() == [[2, 1, 1]]
    # a tie no discarded view resolves (both vote class 2): the tied class the first discarded view scores higher
    tied = _logits([9, 0, 0], [0, 8, 0], [0, 0.3, 1], [0, 0, 0.5])
    assert zero_votes(tied, keep=0.5, logit_scale=1.0).argmax().item() == 1
    # the scores rank the classes with equal votes by the kept views' mean probability, below one vote
    probs = torch.softmax(tied[0, :2], dim=-1).mean(0)
    assert torch.allclose(zero_votes(tied, keep=0.5, logit_scale=1.0)[0], torch.tensor([1.0, 2.0, 0.0]) + RANK_WEIGHT * probs)


def test_zero_keeps_the_most_confident_views_not_the_least():
    # three unconfident views for class 1 outvote two confident ones for class 0 only if the filter is wrong
    logits = _logits([12, 0, 0], [11, 0, 0], [0, 0.2, 0], [0, 0.3, 0], [0, 0.1, 0])
    assert zero_votes(logits, keep=0.4, logit_scale=1.0).argmax().item() == 0
    assert zero_votes(logits, keep=1.0, logit_scale=1.0).argmax().item() == 1  # all views: the majority is class 1


def official_mta(image_features, text_features, logit_scale, lambda_y=0.2, lambda_q=4.0):
    """MaxZanella/MTA's solve_mta, for one image, written out from the official code (its loops,
    its per-view bandwidth, its convergence tests)."""
    logits = image_features @ text_features.t() * logit_scale
    max_iter, th = 5, 1e-6
    n = image_features.shape[0]
    dist = torch.cdist(image_features, image_features)
    sorted_dist, _ = torch.sort(dist, dim=1)
    k = int(0.3 * (n - 1))
    bandwidth = torch.sqrt(0.5 * torch.mean(sorted_dist[:, 1:k + 1] ** 2, dim=1))
    affinity = logits.softmax(1) @ logits.softmax(1).t()
    y = torch.ones(n) / n
    mode = image_features[0]

    def kernel(mu):
        return torch.exp(-torch.norm(image_features - mu, dim=-1, p=2) ** 2 / (2 * bandwidth ** 2))

    for _ in range(max_iter):
        density = kernel(mode)
        for _ in range(max_iter):
            old_y = y
            y = torch.softmax(1 / lambda_y * (density + lambda_q * torch.sum(affinity * y.unsqueeze(0), dim=1)), dim=-1)
            if torch.norm(old_y - y) < th:
                break
        for _ in range(max_iter):
            old_mode = mode
            weighted = kernel(mode) * y
            mode = torch.sum(weighted.unsqueeze(1) * image_features, dim=0) / torch.sum(weighted)
            mode = mode / mode.norm(p=2, dim=-1)
            if torch.norm(old_mode - mode) < th:
                break
    return mode.unsqueeze(0) @ text_features.t() * logit_scale


def test_mta_equals_the_official_loops():
    from glocal.kinds.features import ImageFeatures
    from glocal.methods.mta import mta_scores

    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(3, 16, 8, generator=g), dim=-1)
    feats[:, 1:] = torch.nn.functional.normalize(feats[:, :1] + 0.6 * feats[:, 1:], dim=-1)  # views near the original
    text = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    expected = torch.cat([official_mta(f, text, 100.0) for f in feats])

    class Bank:
        def need(self, name):
            return text

    features = ImageFeatures(full=feats[:, 0], crops={"views": feats[:, 1:]})
    ours = mta_scores(features, Bank(), MTAConfig(n_crops=15))
    assert torch.allclose(ours, expected, atol=1e-3), (ours - expected).abs().max()
    # the mode is not the original view's feature (the method did something), nor the plain mean
    assert not torch.allclose(ours, feats[:, 0] @ text.T * 100, atol=1e-2)
    mean = torch.nn.functional.normalize(feats.mean(1), dim=-1)
    assert not torch.allclose(ours, mean @ text.T * 100, atol=1e-2)
    logits = torch.einsum("bvd,cd->bvc", feats, text) * 100
    assert torch.allclose(mta_mode(feats, logits, MTAConfig()).norm(dim=-1), torch.ones(3), atol=1e-5)


def test_views_are_reproducible_per_seed_and_image_and_follow_torchvisions_rules():
    config = ViewsConfig(n_crops=200)
    plan = view_plan(640, 480, config, "img-1")
    assert torch.equal(plan, view_plan(640, 480, config, "img-1"))
    assert not torch.equal(plan, view_plan(640, 480, config, "img-2"))
    assert not torch.equal(plan, view_plan(640, 480, ViewsConfig(n_crops=200, seed=2), "img-1"))
    x0, y0, x1, y1, flipped = plan.T
    w, h = (x1 - x0).double(), (y1 - y0).double()
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 640).all() and (y1 <= 480).all()
    area = w * h / (640 * 480)
    assert (area >= 0.08 - 0.01).all() and (area <= 1.0).all()  # the area share, up to rounding
    assert ((w / h) >= 3 / 4 - 0.02).all() and ((w / h) <= 4 / 3 + 0.02).all()
    assert 70 < int(flipped.sum()) < 130  # a fair coin per view
    # a thin strip has no room for the drawn shapes: the fallback is the centre crop at the clamped aspect
    strip = view_plan(400, 20, ViewsConfig(n_crops=3, min_scale=0.9), "strip")
    assert strip[:, :4].tolist() == [[186, 0, 213, 20]] * 3  # width round(20 * 4/3) = 27, left (400 - 27) // 2


def test_a_view_is_torchvisions_resized_crop_and_flip():
    from open_clip_setup import open_clip_on_path

    from glocal.kinds.views import pil_view

    with open_clip_on_path():  # torchvision beside the CPU torch (tests only)
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        image = Image.effect_noise((97, 61), 60).convert("RGB")
        for row in view_plan(97, 61, ViewsConfig(n_crops=6), "photo").tolist():
            x0, y0, x1, y1, flipped = row
            theirs = TF.resized_crop(image, y0, x0, y1 - y0, x1 - x0, [56, 56], InterpolationMode.BILINEAR)
            theirs = TF.hflip(theirs) if flipped else theirs
            assert list(pil_view(image, row, 56).getdata()) == list(theirs.getdata())


def test_the_engine_encodes_the_views_the_reference_path_does(tiny_clip):
    from glocal.encode.engine import EngineConfig, encode_features
    from glocal.encode.extract import extract_features

    g = torch.Generator().manual_seed(4)
    images = [Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()) for w, h in ((90, 70), (40, 120))]
    configs = {"views_config": ViewsConfig(n_crops=5)}
    reference, _ = extract_features(tiny_clip, images, ["a", "b"], {"full", "views"}, batch_size=4, **configs)
    engine, record = encode_features(tiny_clip, images, ["a", "b"], {"full", "views"}, engine=EngineConfig(batch_size=8), **configs)
    assert engine.need("views").shape == (2, 5, tiny_clip.embed_dim)
    assert (reference.need("views") - engine.need("views")).abs().max().item() < 0.05


def test_zero_and_mta_share_one_kind_of_views_in_a_run():
    from glocal.run.plan import plan_run
    from glocal.run.request import RunRequest

    plan = plan_run(RunRequest.of(dataset="d", model="m", methods=["zero", "mta"], n_crops=7))
    assert plan.configs["views_config"] == ViewsConfig(n_crops=7)
    assert plan.method_configs()["zero"]["keep"] == 0.3 and plan.method_configs()["mta"]["lambda_q"] == 4.0
    # other views for one of them: refused before compute, named
    with pytest.raises(ValueError, match="two different ViewsConfigs"):
        plan_run(RunRequest.of(dataset="d", model="m", methods=["zero", "mta"], overrides={"mta": {"seed": 2}}))
    # a scoring field differs: the views are still shared
    assert plan_run(RunRequest.of(dataset="d", model="m", methods=["zero", "mta"], overrides={"mta": {"lambda_q": 2.0}})).configs \
        == {"views_config": ViewsConfig()}
