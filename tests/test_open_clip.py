"""open_clip backbones (#28 item 2) on tiny random towers in open_clip's folder format: a ViT with
QuickGELU, a ViT with GELU / squash resize / mean pooling, and a ResNet (no token grid). Each
matches open_clip's own encode_image / encode_text and transform; the ViTs satisfy the run_from
invariant at every block; all run through the evaluate flow (the ResNet without the feature-space
method, which is refused before compute); a real name that is not downloaded fails offline fast."""

import time

import pytest
import torch

from open_clip_setup import open_clip_on_path

KINDS = ["vit-quickgelu", "vit-gelu", "resnet"]


@pytest.fixture(scope="module")
def open_clip():
    with open_clip_on_path() as module:
        yield module


@pytest.fixture(scope="module", params=KINDS)
def tiny(request, open_clip, tmp_path_factory):
    from glocal.backbones import load_backbone
    from glocal.tiny import build_tiny_open_clip

    folder = build_tiny_open_clip(tmp_path_factory.mktemp(request.param) / "model", request.param)
    theirs, _, transform = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return request.param, folder, load_backbone(str(folder)), theirs.eval(), transform


def test_features_equal_open_clips_own(tiny, open_clip):
    kind, folder, bb, theirs, _ = tiny
    assert bb.family == "open_clip"
    x = torch.randn(2, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(bb.encode_images(x), theirs.encode_image(x, normalize=True), atol=1e-5)
        texts = ["a photo of a dog.", "a drawing of a very large red circle with spots"]
        expected = theirs.encode_text(open_clip.get_tokenizer(f"local-dir:{folder}")(texts), normalize=True)
    assert torch.allclose(bb.encode_text(texts), expected, atol=1e-5)


def test_run_from_invariant_at_every_block(tiny):
    kind, _, bb, _, _ = tiny
    x = torch.randn(2, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(1))
    if kind == "resnet":  # one opaque block: the pixels in, the image feature out; nothing on a grid
        assert bb.num_layers == 1 and torch.allclose(bb.run_from(bb.tokens_before(x, 0), 0), bb.encode_images(x))
        with pytest.raises(ValueError, match="ResNet .*feature-space methods \\(ABS\\) cannot run on it"):
            bb.tokens_before(x, 1)
        with pytest.raises(ValueError, match="ResNet"):
            bb.cls_attention(x)
        return
    reference = bb.encode_images(x)
    for layer in range(bb.num_layers + 1):
        tokens = bb.tokens_before(x, layer)
        assert tokens.shape[:2] == (2, 1 + bb.grid**2)
        assert torch.allclose(bb.run_from(tokens, layer), reference, atol=1e-5), layer
    bias = torch.zeros(2, tokens.shape[1])
    assert torch.allclose(bb.run_from(bb.tokens_before(x, 1), 1, bias), reference, atol=1e-5)
    bias[:, 1:5] = 5.0
    assert not torch.allclose(bb.run_from(bb.tokens_before(x, 1), 1, bias), reference, atol=1e-4)
    assert bb.cls_attention(x).shape == (2, bb.grid, bb.grid)


@pytest.mark.shared_data
def test_preprocessing_equals_open_clips_transform_on_the_sample_photos(tiny, shared):
    from PIL import Image

    kind, _, bb, _, transform = tiny
    photos = sorted((shared / "images" / "imagenet-sample").glob("*.jpg"))[:12]
    assert photos
    for path in photos:
        image = Image.open(path)
        assert torch.allclose(bb.preprocess(image), transform(image), atol=1e-5), (kind, path.name)


@pytest.mark.usefixtures("prefect_server")
def test_every_supported_method_runs_through_evaluate(tiny, tmp_path, tiny_dino_dir):
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    kind, folder, _, _, _ = tiny
    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=1)), shard_size=4)
    methods = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "lgca"] + ([] if kind == "resnet" else ["abs"])
    result = evaluate(dataset="shapes", model=str(folder), methods=methods, db=db, attention_model=str(tiny_dino_dir), n_crops=3)
    assert set(result["accuracy"]) == set(methods)
    if kind == "resnet":
        with pytest.raises(ValueError, match="ResNet .*so abs \\(feature-space windows on the token grid\\) cannot run on it"):
            evaluate(dataset="shapes", model=str(folder), methods=["clip", "abs"], db=db, attention_model=str(tiny_dino_dir), n_crops=3)


def test_a_real_name_not_downloaded_fails_offline_fast_naming_it(open_clip, monkeypatch, tmp_path):
    from glocal.backbones.identity import check_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    started = time.monotonic()
    with pytest.raises(ValueError, match="open_clip:ViT-B-32/laion2b_s34b_b79k: .*HF_HUB_OFFLINE"):
        check_models("open_clip:ViT-B-32/laion2b_s34b_b79k")
    assert time.monotonic() - started < 2
    with pytest.raises(ValueError, match="open_clip has no model 'ViT-Q-99'"):
        check_models("open_clip:ViT-Q-99/laion2b")
    with pytest.raises(ValueError, match="no weights 'nonsense' for ViT-B-32 .*laion2b_s34b_b79k"):
        check_models("open_clip:ViT-B-32/nonsense")


def test_an_architecture_with_a_checkpoint_file(open_clip, tmp_path):
    """open_clip:ARCH/FILE loads ARCH with the file's weights (open_clip's ``pretrained=FILE``), and
    the model's identity is the file's bytes: other weights under the same name are another model."""
    import json

    from glocal.backbones import load_backbone
    from glocal.backbones.identity import check_models, model_identity
    from glocal.tiny import OPEN_CLIP_TINY, build_tiny_open_clip

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "glocal-tiny-vit.json").write_text(json.dumps(OPEN_CLIP_TINY["vit-quickgelu"]))
    open_clip.add_model_config(tmp_path / "configs")  # as a user registers a custom architecture
    checkpoint = build_tiny_open_clip(tmp_path / "a", "vit-quickgelu", seed=1) / "open_clip_model.safetensors"
    name = f"open_clip:glocal-tiny-vit/{checkpoint}"
    check_models(name)
    bb = load_backbone(name)
    folder = load_backbone(str(tmp_path / "a"))  # the same weights through the folder
    x = torch.randn(1, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(bb.encode_images(x), folder.encode_images(x), atol=1e-6)
    before = model_identity(name)
    build_tiny_open_clip(tmp_path / "a", "vit-quickgelu", seed=2)  # other weights, same file name
    assert model_identity(name) != before and model_identity(name).startswith("open_clip:glocal-tiny-vit:file:")


def test_a_hub_model_not_downloaded_is_named_by_the_model_check_not_a_raw_hub_error(open_clip, monkeypatch, tmp_path):
    from glocal.backbones.identity import check_models
    from glocal.run.plan import plan_run
    from glocal.run.request import RunRequest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    name = "hf-hub:timm/ViT-B-16-SigLIP"
    plan_run(RunRequest.of(dataset="d", model=name, methods=["clip", "abs"], attention_model="dino"))  # planned: its grid is unknown here
    with pytest.raises(ValueError, match="timm/ViT-B-16-SigLIP: not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"):
        check_models(name)
