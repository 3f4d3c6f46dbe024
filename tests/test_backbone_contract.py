"""Every registered backbone family on a tiny random config passes the same contract: the run_from
invariant at every block it supports, normalised outputs, the tokenizer round trip, the model's own
preprocessing, and the unchanged methods (ABS, WCA, LGCA crops through the engine and the reference
path) on top of it."""

import pytest
import torch
from PIL import Image

from glocal.backbones import backbone_families, load_backbone
from glocal.tiny import TINY_BUILDERS

FAMILIES = [family for family in backbone_families() if family != "open_clip"]  # open_clip: tests/test_open_clip.py


def test_every_family_has_a_tiny_builder():
    assert set(FAMILIES) == set(TINY_BUILDERS) == {"align", "altclip", "clip", "groupvit", "metaclip2", "siglip", "siglip2"}
    assert set(backbone_families()) == set(FAMILIES) | {"open_clip"}


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory):
    family = request.param
    folder = TINY_BUILDERS[family](tmp_path_factory.mktemp(family) / "model")
    return family, folder, load_backbone(str(folder))  # family read from config.json


def test_family_is_detected_from_the_config(tiny):
    family, _, backbone = tiny
    assert backbone.family == family


def test_a_processor_crop_that_does_not_fit_the_tower_is_refused(tiny):
    import dataclasses

    _, _, bb = tiny
    wrong = dataclasses.replace(bb.spec, resize=bb.image_size + 8, crop=bb.image_size + 8)
    with pytest.raises(ValueError, match=rf"crops {bb.image_size + 8}px but the vision tower expects {bb.image_size}px; fix preprocessor_config.json"):
        type(bb)(bb.model, bb.tokenizer, wrong, name="x")


def test_run_from_invariant_every_supported_layer(tiny):
    _, _, bb = tiny
    x = torch.randn(3, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(0))
    reference = bb.encode_images(x)  # the model's own image-feature path
    assert reference.shape == (3, bb.embed_dim)
    assert torch.allclose(reference.norm(dim=-1), torch.ones(3), atol=1e-5)
    first = getattr(bb, "min_feature_layer", 0)
    assert first <= bb.num_layers - 1  # the default feature layer (last block) is supported
    for layer in range(first, bb.num_layers + 1):
        tokens = bb.tokens_before(x, layer)
        assert tokens.shape[:2] == (3, bb.num_prefix_tokens + bb.grid**2), layer
        assert torch.allclose(bb.run_from(tokens, layer), reference, atol=1e-5), layer
    with pytest.raises(ValueError, match="out of range"):
        bb.tokens_before(x, bb.num_layers + 1)


def test_zero_attention_bias_is_a_no_op(tiny):
    family, _, bb = tiny
    x = torch.randn(2, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(5))
    layer = bb.num_layers - 1
    tokens = bb.tokens_before(x, layer)
    if family == "align":
        with pytest.raises(ValueError, match="convolutional"):
            bb.run_from(tokens, layer, torch.zeros(2, tokens.shape[1]))
        return
    plain = bb.run_from(tokens, layer)
    assert torch.allclose(bb.run_from(tokens, layer, torch.zeros(2, tokens.shape[1])), plain, atol=1e-6)
    bias = torch.zeros(2, tokens.shape[1])
    bias[:, bb.num_prefix_tokens : bb.num_prefix_tokens + 4] = 5.0
    assert not torch.allclose(bb.run_from(tokens, layer, bias), plain, atol=1e-4)


def test_text_round_trip(tiny):
    _, _, bb = tiny
    texts = ["a photo of a cat.", "a photo of a dog with a very long tail and spots", "x"]
    features = bb.encode_text(texts)
    assert features.shape == (3, bb.embed_dim)
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)
    ids = bb.tokenizer(texts[0])["input_ids"]
    assert bb.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == texts[0].replace(" ", "")
    # one sentence alone and inside a padded batch give the same feature
    assert torch.allclose(bb.encode_text(texts[:1]), features[:1], atol=1e-5)
    assert not torch.allclose(features[0], features[1], atol=1e-3)


@pytest.mark.parametrize("size, mode", [((97, 61), "RGB"), ((45, 130), "RGB"), ((80, 80), "L"), ((9, 7), "RGB")])
def test_preprocess_matches_the_models_processor(tiny, size, mode):
    import transformers

    family, folder, bb = tiny
    processor_class = {"clip": "CLIPImageProcessor", "altclip": "CLIPImageProcessor", "siglip": "SiglipImageProcessor",
                       "siglip2": "SiglipImageProcessor", "metaclip2": "CLIPImageProcessor", "groupvit": "CLIPImageProcessor", "align": "EfficientNetImageProcessor"}[family]
    processor = getattr(transformers, processor_class).from_pretrained(folder)
    array = (torch.rand(size[1], size[0], 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    image = Image.fromarray(array).convert(mode)
    expected = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
    ours = bb.preprocess(image)
    assert ours.shape == (3, bb.image_size, bb.image_size)
    assert torch.allclose(ours, expected, atol=1e-4), (ours - expected).abs().max()


def test_methods_run_unchanged_on_every_family(tiny):
    """The engine and the reference path give the same crops and features for ABS, WCA and LGCA."""
    from glocal.config import ABSConfig, LGCAConfig, WCAConfig
    from glocal.encode.engine import EngineConfig, encode_features
    from glocal.encode.extract import extract_features

    _, _, bb = tiny
    g = torch.Generator().manual_seed(4)
    images = [Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()) for w, h in ((90, 70), (40, 120))]
    ids = ["a", "b"]
    kwargs = dict(abs_config=ABSConfig(n_crops=4), wca_config=WCAConfig(n_crops=3), lgca_config=LGCAConfig(n_crops=4, steps=2, top_k=2),
                  attention_maps=torch.rand(2, 14, 14, generator=g),
                  class_embeddings=torch.nn.functional.normalize(torch.randn(5, bb.embed_dim, generator=g), dim=-1))
    needs = {"full", "raw", "feat", "wca", "lgca"}
    reference, _ = extract_features(bb, images, ids, needs, batch_size=4, **kwargs)
    engine, _ = encode_features(bb, images, ids, needs, engine=EngineConfig(batch_size=8), **kwargs)
    assert engine.need("feat").shape == (2, 4, bb.embed_dim) and engine.need("raw").shape == (2, 4, bb.embed_dim)
    for name in ("full", "raw", "feat", "wca"):
        assert (reference.need(name) - engine.need(name)).abs().max().item() < 0.05, name


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("family", ["align", "groupvit", "siglip", "siglip2", "metaclip2"])
def test_every_method_scores_through_the_pipeline(family, tmp_path, tiny_dino_dir):
    """The evaluate flow, unchanged, with a backbone that has no CLS token (and, for ALIGN, no attention)."""
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from storage import Catalog
    from tasks.ingest import ingest_folder

    model = TINY_BUILDERS[family](tmp_path / family)
    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=2)), shard_size=4)
    methods = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "abs", "lgca"]
    result = evaluate(dataset="shapes", model=str(model), methods=methods, db=db, attention_model=str(tiny_dino_dir), n_crops=3)
    assert set(result["accuracy"]) == set(methods)
    _, rows, _ = Catalog(db).query(f"SELECT method, count(*) FROM predictions WHERE run_id = '{result['run_id']}' GROUP BY method")
    assert dict(rows) == {m: 6 for m in methods}


def test_siglip2_lowercases_text_as_it_was_trained_and_siglip_does_not(tmp_path):
    """SigLIP 2 checkpoints ship GemmaTokenizer, which keeps case; the paper lowercases before
    tokenising. The same weights under a SigLIP (1) tokenizer are not lowercased."""
    from glocal.tiny import build_tiny_siglip2

    siglip2 = load_backbone(str(build_tiny_siglip2(tmp_path / "s2")))
    assert siglip2.family == "siglip2"
    ids = siglip2.tokenizer("A Dog")["input_ids"]
    assert ids != siglip2.tokenizer("a dog")["input_ids"]  # the shipped tokenizer alone keeps case
    assert torch.equal(siglip2.encode_text(["A PHOTO OF A Dog."]), siglip2.encode_text(["a photo of a dog."]))
    plain = load_backbone(str(tmp_path / "s2"), family="siglip")
    assert not torch.allclose(plain.encode_text(["A PHOTO OF A Dog."]), plain.encode_text(["a photo of a dog."]), atol=1e-4)


def test_siglip2_naflex_is_refused_with_the_reason(tmp_path):
    from transformers import Siglip2Config

    folder = tmp_path / "naflex"
    folder.mkdir()
    Siglip2Config().save_pretrained(folder)
    with pytest.raises(ValueError, match="NaFlex .* use a fixed-resolution one"):
        load_backbone(str(folder))
    from glocal.backbones.identity import check_models

    with pytest.raises(ValueError, match="NaFlex"):  # before any compute
        check_models(str(folder))
