"""BiFTA (#29): its view refinement equals the official filter_augmented_samples, its description
refinement keeps what the rule says by hand, its score equals main.py's aggregation written out,
its per-image draws are reproducible per (seed, image id, draw) wherever the image sits, and the
engine's kept crops equal the reference path's."""

import math

import torch
import torch.nn.functional as F
from PIL import Image

from glocal.config import BiFTAConfig
from glocal.geometry.plans import bifta_boxes, iou_filter
from glocal.kinds.features import ImageFeatures
from glocal.methods.bifta import bifta_scores, draw_picks, refine_descriptions
from glocal.text.bank import Padded


def official_iou(boxes, box2):
    out = []
    for box1 in boxes:
        w = max(0, min(box1[2], box2[2]) - max(box1[0], box2[0]))
        h = max(0, min(box1[3], box2[3]) - max(box1[1], box2[1]))
        inter = w * h
        union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
        out.append(inter / union if union > 0 else 0)
    return out


def official_filter(coordinates, threshold, max_queue_len):
    """helper.py's filter_augmented_samples, the crops' indices instead of their pixels."""
    queue, saved = [], []
    for i, box in enumerate(coordinates):
        if not saved:
            queue.append(i)
            saved.append(box)
        elif max(official_iou(saved, box)) <= threshold:
            queue.append(i)
            saved.append(box)
            if len(queue) >= max_queue_len:
                break
    return queue


def test_the_iou_filter_is_the_official_one():
    g = torch.Generator().manual_seed(0)
    for threshold, cap in ((0.85, 100), (0.5, 100), (0.3, 7)):
        side = torch.randint(20, 90, (100,), generator=g)
        x0, y0 = torch.randint(0, 60, (100,), generator=g), torch.randint(0, 40, (100,), generator=g)
        boxes = torch.stack([x0, y0, x0 + side, y0 + side], 1)
        expected = official_filter(boxes.tolist(), threshold, cap)
        assert iou_filter(boxes, threshold, cap).tolist() == expected
        assert len(expected) < 100  # the filter dropped some: the comparison is not vacuous
    # by hand: the second box overlaps the first by IoU 0.81 (kept at 0.85, dropped at 0.8)
    two = torch.tensor([[0, 0, 10, 10], [0, 0, 9, 9]])
    assert iou_filter(two, 0.85, 100).tolist() == [0, 1] and iou_filter(two, 0.8, 100).tolist() == [0]


def test_kept_boxes_are_reproducible_per_seed_and_image():
    config = BiFTAConfig()
    boxes = bifta_boxes(500, 375, config, "img-1")
    assert torch.equal(boxes, bifta_boxes(500, 375, config, "img-1"))
    assert not torch.equal(boxes, bifta_boxes(500, 375, config, "img-2"))
    side = boxes[:, 2] - boxes[:, 0]
    assert (side >= int(0.5 * 375) - 1).all() and (side <= int(0.9 * 375)).all() and len(boxes) <= 100


def test_description_refinement_by_hand():
    e = torch.eye(4)
    near = F.normalize(e[0] + 0.05 * e[1], dim=0)  # cos with e0 ~ 0.9988: a near duplicate
    emb = torch.stack([torch.stack([e[0], near, e[1], e[0], e[2]]), torch.stack([e[3], e[2], e[1], torch.zeros(4), torch.zeros(4)])])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    refined = refine_descriptions(Padded(emb, mask), 0.99, 50)
    assert refined.mask.tolist() == [[True, True, True], [True, True, True]]
    assert torch.equal(refined.emb[0], torch.stack([e[0], e[1], e[2]]))  # the near and the exact duplicate of e0 dropped
    assert torch.equal(refined.emb[1], torch.stack([e[3], e[2], e[1]]))
    limited = refine_descriptions(Padded(emb, mask), 0.99, 2)
    assert limited.mask.tolist() == [[True, True], [True, True]] and torch.equal(limited.emb[0], torch.stack([e[0], e[1]]))
    assert refine_descriptions(Padded(emb, mask), 0.999, 50).mask[0].sum() == 4  # the near one stays at a looser threshold


class Bank:
    def __init__(self, descriptions, prompts):
        self.items = {"descriptions": descriptions, "prompts": prompts}

    def need(self, name):
        return self.items[name]


def fixture(seed=0):
    g = torch.Generator().manual_seed(seed)
    d = 12
    full = F.normalize(torch.randn(3, d, generator=g), dim=-1)
    pool = F.normalize(full[:, None] + 0.7 * torch.randn(3, 9, d, generator=g), dim=-1)
    pool[0, 6:] = 0  # image 0 kept 6 crops, image 2 kept 4
    pool[2, 4:] = 0
    descriptions = F.normalize(torch.randn(5, 7, d, generator=g), dim=-1)
    prompts = F.normalize(torch.randn(5, d, generator=g), dim=-1)
    return full, pool, descriptions, prompts


def official_logits(full, patches, descriptions, prompts):
    """main.py / helper.py for one image: w = softmax(e^4 sim) over the picked patches, the
    aggregate normalised; zeroshot_classifier with tt_scale e^2 per class; their product."""
    sim = patches @ full
    w = (sim * torch.exp(torch.tensor(4.0))).softmax(-1)[:, None]
    aggregated = F.normalize((patches * w).sum(0), dim=-1)
    weights = []
    for emb, label in zip(descriptions, prompts):
        v = ((emb @ label[:, None]) * torch.exp(torch.tensor(2.0))).softmax(dim=0)
        class_embedding = (emb * v).sum(0)
        weights.append(class_embedding / class_embedding.norm())
    return aggregated @ torch.stack(weights, 1)


def test_bifta_equals_the_official_aggregation_on_each_images_own_draw():
    full, pool, descriptions, prompts = fixture()
    ids = ["a", "b", "c"]
    config = BiFTAConfig(draw_size=5, description_similarity=1.0)  # no description is dropped: compare the scoring
    features = ImageFeatures(full=full, crops={"bifta": pool}, image_ids=ids)
    mask = torch.ones(5, 7, dtype=torch.bool)
    for draw in (0, 3):
        ours = bifta_scores(features, Bank(Padded(descriptions, mask), prompts), config, draw=draw)
        for b, (image_id, kept) in enumerate(zip(ids, (6, 9, 4))):
            picks = draw_picks(config, image_id, kept, draw)
            assert picks.max() < kept  # only kept crops, never the zero padding
            expected = official_logits(full[b], pool[b, picks], descriptions, prompts)
            assert torch.allclose(ours[b], expected, atol=1e-5)
    # draws differ, and each image draws its own picks (not one set of indices for all, as WCA's)
    assert not torch.equal(draw_picks(config, "a", 9, 0), draw_picks(config, "a", 9, 1))
    assert not torch.equal(draw_picks(config, "a", 9, 0), draw_picks(config, "b", 9, 0))


def test_an_images_draw_does_not_depend_on_its_batch():
    full, pool, descriptions, prompts = fixture(1)
    bank = Bank(Padded(descriptions, torch.ones(5, 7, dtype=torch.bool)), prompts)
    config = BiFTAConfig(draw_size=4)
    whole = bifta_scores(ImageFeatures(full=full, crops={"bifta": pool}, image_ids=["a", "b", "c"]), bank, config, draw=2)
    alone = bifta_scores(ImageFeatures(full=full[2:], crops={"bifta": pool[2:]}, image_ids=["c"]), bank, config, draw=2)
    assert torch.allclose(whole[2:], alone, atol=1e-6)


def test_the_engine_encodes_the_kept_crops_the_reference_path_does(tiny_clip):
    from glocal.encode.engine import EngineConfig, encode_features
    from glocal.encode.extract import extract_features

    g = torch.Generator().manual_seed(5)
    images = [Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()) for w, h in ((90, 70), (60, 120))]
    config = {"bifta_config": BiFTAConfig(n_crops=30, iou_threshold=0.5, max_kept=12)}
    reference, record = extract_features(tiny_clip, images, ["a", "b"], {"full", "bifta"}, batch_size=4, **config)
    engine, _ = encode_features(tiny_clip, images, ["a", "b"], {"full", "bifta"}, engine=EngineConfig(batch_size=8), **config)
    kept = [len(bifta_boxes(im.width, im.height, config["bifta_config"], i)) for im, i in zip(images, "ab")]
    for features in (reference, engine):
        crops = features.need("bifta")
        assert crops.shape == (2, 12, tiny_clip.embed_dim)
        assert [(crops[b].norm(dim=-1) > 0.5).sum().item() for b in range(2)] == kept  # kept rows, then zeros
    assert min(kept) < 12  # some image kept fewer than the cap: the padding is exercised
    assert (reference.need("bifta") - engine.need("bifta")).abs().max().item() < 0.05
    assert record.outputs["bifta"].boxes["bifta_boxes"][0].shape == (12, 4)
    assert math.isclose(float(reference.need("bifta")[0, 0].norm()), 1.0, rel_tol=1e-4)


def test_the_refinement_is_computed_once_per_bank_and_anew_for_another(monkeypatch):
    """A shard is scored in 20 draws: the descriptions are refined once per bank, not per draw;
    another bank (other descriptions) gets its own refinement."""
    import glocal.methods.bifta as bifta

    calls = []
    real = bifta.refine_descriptions
    monkeypatch.setattr(bifta, "refine_descriptions", lambda *args: calls.append(args[0]) or real(*args))
    full, pool, descriptions, prompts = fixture()
    features = ImageFeatures(full=full, crops={"bifta": pool}, image_ids=["a", "b", "c"])
    config = BiFTAConfig(draw_size=5, n_descriptions=3)
    mask = torch.ones(5, 7, dtype=torch.bool)
    bank = Bank(Padded(descriptions, mask), prompts)
    scores = [bifta_scores(features, bank, config, draw=d) for d in range(4)]
    assert len(calls) == 1
    other = Bank(Padded(descriptions.flip(1), mask), prompts)  # the same sentences, another order: other first three
    theirs = bifta_scores(features, other, config, draw=0)
    assert len(calls) == 2 and not torch.allclose(theirs, scores[0])
    for d, score in enumerate(scores):  # what an uncached refinement gives
        expected = bifta.weighted_score(full, torch.gather(pool, 1, torch.stack([draw_picks(config, i, n, d) for i, n in
                                                                                 zip("abc", (6, 9, 4))])[:, :, None].expand(-1, -1, 12)),
                                        real(Padded(descriptions, mask), config.description_similarity, 3), prompts,
                                        config.crop_weight_scale, config.description_weight_scale, "code")
        assert torch.allclose(score, expected)
