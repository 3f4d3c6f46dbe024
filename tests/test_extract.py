import pytest
import torch
from PIL import Image

from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.data.images import BadImage, open_image, read_dataset
from glocal.encode.extract import extract_features


def images():
    g = torch.Generator().manual_seed(0)
    def noise(w, h):
        return Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy())
    # odd sizes, a portrait, a greyscale one and one smaller than the 56 px model input
    return [noise(90, 61), noise(40, 77), noise(120, 120).convert("L"), noise(13, 9)]


def peaked_maps(n, g=14):
    maps = torch.rand(n, g, g, generator=torch.Generator().manual_seed(1))
    maps[:, 4, 5] += 3
    return maps


IDS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
ABS = ABSConfig(n_crops=6)
WCA = WCAConfig(n_crops=5)
LGCA = LGCAConfig(n_crops=6, steps=2, top_k=3)


def run(backbone, needs, **kw):
    class_emb = torch.nn.functional.normalize(torch.randn(3, backbone.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    kw.setdefault("abs_config", ABS)
    return extract_features(
        backbone, images(), IDS, needs, wca_config=WCA, lgca_config=LGCA,
        attention_maps=peaked_maps(4), class_embeddings=class_emb, batch_size=4, **kw,
    )


def test_all_features_shapes_normalised_and_deterministic(tiny_clip):
    needs = {"full", "raw", "feat", "wca", "lgca"}
    f1, rec = run(tiny_clip, needs)
    f2, _ = run(tiny_clip, needs)
    d = tiny_clip.embed_dim
    assert f1.full.shape == (4, d) and f1.need("raw").shape == (4, 6, d) and f1.need("feat").shape == (4, 6, d)
    assert f1.need("wca").shape == (4, 5, d) and [s.shape for s in f1.need("lgca")] == [(4, 6, d), (4, 3, d), (4, 3, d)]
    for t in [f1.full, f1.need("raw"), f1.need("feat"), f1.need("wca"), *f1.need("lgca")]:
        assert torch.allclose(t.norm(dim=-1), torch.ones(t.shape[:-1]), atol=1e-4)
    for a, b in [(f1.need("raw"), f2.need("raw")), (f1.need("feat"), f2.need("feat")), (f1.need("wca"), f2.need("wca"))]:
        assert torch.equal(a, b)
    # the tiny 13x9 image still yields valid boxes
    assert (rec.boxes["raw_boxes"][3][:, 2] <= 13).all() and (rec.boxes["raw_boxes"][3][:, 3] <= 9).all()


def test_batch_size_does_not_change_features(tiny_clip):
    a, _ = run(tiny_clip, {"full", "raw", "feat"})
    imgs = images()
    b, _ = extract_features(tiny_clip, imgs, IDS, {"full", "raw", "feat"}, abs_config=ABS, attention_maps=peaked_maps(4), batch_size=1)
    assert torch.allclose(a.need("raw"), b.need("raw"), atol=1e-5) and torch.allclose(a.need("feat"), b.need("feat"), atol=1e-5)


def test_raw_crop_equals_encoding_the_pil_crop(tiny_clip_dir, tiny_clip):
    from transformers import CLIPImageProcessor

    features, record = run(tiny_clip, {"full", "raw"})
    processor = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    image = images()[0]
    box = tuple(record.boxes["raw_boxes"][0][2].tolist())
    pixels = processor(images=image.crop(box), return_tensors="pt")["pixel_values"]
    assert torch.allclose(features.need("raw")[0, 2], tiny_clip.encode_images(pixels)[0], atol=1e-5)


@pytest.mark.parametrize("augment", ["crop", "mask", "highlight_tokens"])
def test_whole_grid_window_reproduces_the_full_image(tiny_clip, augment, monkeypatch):
    """A window covering the whole grid must give back the full-image feature (for crop: the
    bicubic resize to the same size is the identity), at any layer."""
    import glocal.kinds.abs_crops as ex
    from glocal.geometry.plans import ABSPlan

    g = tiny_clip.grid
    def whole(attention, w, h, grid, config, image_id, frame="stretch", **input_frame):
        return ABSPlan(torch.zeros(3, dtype=torch.long), torch.tensor([[0, 0, w, h]] * 3), torch.tensor([[0, 0, g, g]] * 3))
    monkeypatch.setattr(ex, "abs_plan", whole)
    for layer in (0, 1, 2):
        cfg = ABSConfig(n_crops=3, layer_id=layer, feature_augment=augment)
        features, _ = run(tiny_clip, {"full", "feat"}, abs_config=cfg)
        expected = features.full[:, None].expand(-1, 3, -1)
        assert torch.allclose(features.need("feat"), expected, atol=1e-5), (augment, layer)


@pytest.mark.parametrize("augment", ["crop", "mask", "highlight_tokens", "highlight_attention"])
def test_partial_window_changes_the_feature_at_the_last_block(tiny_clip, augment):
    features, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, feature_augment=augment))
    assert not torch.allclose(features.need("feat")[0, 0], features.full[0], atol=1e-3)


@pytest.mark.parametrize("augment", ["mask", "highlight", "red_circle"])
def test_raw_augment_variants_run(tiny_clip, augment):
    features, _ = run(tiny_clip, {"full", "raw"}, abs_config=ABSConfig(n_crops=4, raw_augment=augment))
    assert features.need("raw").shape == (4, 4, tiny_clip.embed_dim)


def test_highlight_attention_variant(tiny_clip):
    plain, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, feature_augment="crop"))
    attn, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, feature_augment="highlight_attention"))
    assert attn.need("feat").shape == plain.need("feat").shape and not torch.allclose(attn.need("feat"), plain.need("feat"))


def test_lgca_boxes_grow_from_the_most_salient(tiny_clip):
    _, record = run(tiny_clip, {"full", "lgca"})
    for steps in record.boxes["lgca_boxes"]:
        assert [len(b) for b in steps] == [6, 3, 3]
        for before, after in zip(steps[1:], steps[2:]):
            assert ((after[:, 2] - after[:, 0]) >= (before[:, 2] - before[:, 0])).all()


def test_unknown_augment_fails_before_compute(tiny_clip):
    with pytest.raises(ValueError, match="unknown raw augmentation"):
        run(tiny_clip, {"full", "raw"}, abs_config=ABSConfig(raw_augment="blur"))


def test_bad_images_are_reported(tmp_path, shared):
    good = (shared / "images" / "imagenet-sample" / "n01440764_tench.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.jpg").write_text("this is not an image")
    for name in ("truncated.jpg", "notes.jpg"):
        with pytest.raises(BadImage):
            open_image(tmp_path / name)


def test_read_dataset_layouts(tmp_path):
    for cls in ("b_dog", "a_cat"):
        (tmp_path / "folders" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "folders" / cls / "x.png")
    records, classes = read_dataset(tmp_path / "folders")
    assert classes == ["a_cat", "b_dog"] and [r.label for r in records] == [0, 1]
    assert records[0].image_id == "a_cat/x.png"
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "labels.csv").write_text("file,label,classname\nx.png,1,dog\ny.png,0,cat\n")
    records, classes = read_dataset(tmp_path / "csv")
    assert classes == ["cat", "dog"] and [r.label for r in records] == [1, 0]
    (tmp_path / "csv" / "labels.csv").write_text("name,label\n")
    with pytest.raises(ValueError, match="missing column"):
        read_dataset(tmp_path / "csv")


def test_layer_id_is_the_papers_zero_based_block_index(tiny_clip):
    """Table 7's Layer_id is the official 0-based index (11 = the last block of 12): layer_id =
    depth - 1 crops the last block's input, exactly as the default; layer_id = depth is refused."""
    depth = tiny_clip.num_layers
    last, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, layer_id=depth - 1))
    default, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3))
    first, _ = run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, layer_id=0))
    assert torch.equal(last.need("feat"), default.need("feat")) and not torch.allclose(first.need("feat"), default.need("feat"), atol=1e-4)
    with pytest.raises(ValueError, match=rf"layer_id {depth} out of range 0\.\.{depth - 1}"):
        run(tiny_clip, {"full", "feat"}, abs_config=ABSConfig(n_crops=3, layer_id=depth))
