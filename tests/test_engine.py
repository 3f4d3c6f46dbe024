"""The batched engine against the reference (PIL, per image) path: same boxes, features within a
stated tolerance, independent of batch size, on odd, greyscale and tiny images."""

import pytest
import torch
from PIL import Image

from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.encode.engine import PIXEL_TOLERANCE, EngineConfig, _Packer, crop_pixels, encode_features, image_tensor
from glocal.encode.extract import extract_features

ALL_NEEDS = {"full", "raw", "feat", "wca", "lgca"}


def _images():
    g = torch.Generator().manual_seed(0)

    def noise(w, h, mode="RGB"):
        arr = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        im = Image.fromarray(arr)
        return im.convert(mode) if mode != "RGB" else im

    # odd landscape, portrait, greyscale, smaller than the 56px crop, a long thin strip
    return [noise(97, 61), noise(45, 130), noise(80, 80, "L"), noise(9, 7), noise(300, 20)]


def test_tensor_crops_match_pil_within_tolerance(tiny_clip):
    spec = tiny_clip.spec
    diffs = []
    for im in _images():
        w, h = im.size
        boxes = torch.tensor([[0, 0, w, h], [w // 4, h // 5, w - 1, h - 2], [1, 1, max(2, w // 3), max(2, h // 2)], [-3, -2, w + 4, h + 1]])
        engine = crop_pixels(image_tensor(im), boxes, spec)
        reference = torch.stack([tiny_clip.preprocess(im.convert("RGB").crop(tuple(b))) for b in boxes.tolist()])
        diffs.append((engine - reference).abs())
    worst = max(d.max().item() for d in diffs)
    mean = torch.cat([d.flatten() for d in diffs]).mean().item()
    assert worst <= PIXEL_TOLERANCE, worst
    assert mean < 1e-3, mean
    assert worst > 0  # a different implementation, not PIL under another name


@pytest.fixture(scope="module")
def both_paths(tiny_clip):
    images = _images()
    ids = [f"img-{i}" for i in range(len(images))]
    maps = torch.rand(len(images), 14, 14, generator=torch.Generator().manual_seed(1))
    class_embeddings = torch.nn.functional.normalize(torch.randn(6, tiny_clip.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    kwargs = dict(abs_config=ABSConfig(n_crops=5), wca_config=WCAConfig(n_crops=4), lgca_config=LGCAConfig(n_crops=6, steps=2, top_k=3),
                  attention_maps=maps, class_embeddings=class_embeddings)
    reference, ref_record = extract_features(tiny_clip, images, ids, ALL_NEEDS, batch_size=8, **kwargs)
    engine, record = encode_features(tiny_clip, images, ids, ALL_NEEDS, engine=EngineConfig(batch_size=16), **kwargs)
    return images, ids, kwargs, reference, ref_record, engine, record


def test_engine_uses_the_same_boxes(both_paths):
    *_, ref_record, _, record = both_paths
    for name in ("raw_boxes", "windows", "wca_boxes"):
        assert all(torch.equal(a, b) for a, b in zip(ref_record.boxes[name], record.boxes[name]))
    assert all(torch.equal(a, b) for ra, rb in zip(ref_record.boxes["lgca_boxes"], record.boxes["lgca_boxes"]) for a, b in zip(ra, rb))


FEATURE_TOLERANCE = 0.02  # max |difference| of unit-norm features, from the pixel tolerance above


def test_engine_features_match_reference(both_paths):
    _, _, _, reference, _, engine, _ = both_paths
    for name in ("full", "raw", "feat", "wca"):
        a, b = reference.need(name), engine.need(name)
        assert a.shape == b.shape, name
        assert (a - b).abs().max().item() < FEATURE_TOLERANCE, name
        assert torch.allclose(b.norm(dim=-1), torch.ones(b.shape[:-1]), atol=1e-4)
    assert len(engine.need("lgca")) == 3
    for a, b in zip(reference.need("lgca"), engine.need("lgca")):
        assert a.shape == b.shape and (a - b).abs().max().item() < FEATURE_TOLERANCE


def test_batch_size_does_not_change_results(tiny_clip, both_paths):
    images, ids, kwargs, _, _, engine, _ = both_paths
    other, _ = encode_features(tiny_clip, iter(images), ids, ALL_NEEDS, engine=EngineConfig(batch_size=3), **kwargs)
    for name in ("full", "raw", "feat", "wca"):
        assert torch.allclose(engine.need(name), other.need(name), atol=1e-5), name
    for a, b in zip(engine.need("lgca"), other.need("lgca")):
        assert torch.allclose(a, b, atol=1e-5)


def test_packer_encodes_fixed_size_batches_and_scatters_back():
    sizes = []

    def encode(x, extra):
        sizes.append(len(x))
        return x[:, :2] * 10

    out = torch.zeros(3, 7, 2)
    packer = _Packer(encode, batch_size=4)
    for row, n in enumerate((7, 2, 5)):
        packer.add(torch.arange(n * 2, dtype=torch.float32).view(n, 2) + 100 * row, out, row)
        assert packer.pending < 4  # never more than a batch waits
    packer.finish()
    assert sizes == [4, 4, 4, 2]
    for row, n in enumerate((7, 2, 5)):
        assert torch.equal(out[row, :n], (torch.arange(n * 2, dtype=torch.float32).view(n, 2) + 100 * row) * 10)


def test_batched_crops_give_the_reference_inputs(tiny_clip, both_paths):
    """With the GPU's crop path forced on the CPU the model inputs are the PIL path's bit for bit,
    so features differ from the reference only by float rounding in batched GEMMs (~1e-7), while
    the CPU loop's one- and two-level pixel differences show (~1e-5 on this tiny tower)."""
    images, ids, kwargs, reference, _, loop_engine, _ = both_paths
    batched, _ = encode_features(tiny_clip, images, ids, ALL_NEEDS, engine=EngineConfig(batch_size=16, batched_crops=True), **kwargs)
    gap = lambda features, names: max((features.need(n) - reference.need(n)).abs().max().item() for n in names)  # noqa: E731
    assert gap(batched, ("full", "raw", "wca", "feat")) < 1e-6
    assert gap(loop_engine, ("full", "raw", "wca")) > 1e-5
    assert max((a - b).abs().max().item() for a, b in zip(reference.need("lgca"), batched.need("lgca"))) < 1e-6


@pytest.mark.slow
def test_compiled_forwards_match_eager(tiny_clip, both_paths):
    """torch.compile'd crop and window forwards (padded to full batches) give the eager features,
    and a second call reuses the compiled graphs."""
    images, ids, kwargs, _, _, engine, _ = both_paths
    needs = {"full", "raw", "feat", "wca"}
    config = EngineConfig(batch_size=16, compile=True)
    compiled, _ = encode_features(tiny_clip, images, ids, needs, engine=config, **kwargs)
    for name in ("full", "raw", "feat", "wca"):
        assert torch.allclose(compiled.need(name), engine.need(name), atol=1e-5), name
    cached = tiny_clip.__dict__["_compiled_forwards"]
    again, _ = encode_features(tiny_clip, images[:2], ids[:2], needs, engine=config, **{**kwargs, "attention_maps": kwargs["attention_maps"][:2]})
    assert tiny_clip.__dict__["_compiled_forwards"] is cached and len(cached) == 1
    assert torch.allclose(again.need("raw"), engine.need("raw")[:2], atol=1e-5)


@pytest.fixture(scope="module")
def meta_clip(tiny_clip_dir):
    """The tiny tower on PyTorch's ``meta`` device: shapes without data, and an error whenever a
    tensor from the host meets one from the device. Stands in for a GPU this CI does not have."""
    from glocal.backbones import load_backbone

    backbone = load_backbone(str(tiny_clip_dir))
    backbone.model.to("meta")
    backbone.device = torch.device("meta")
    return backbone


@pytest.mark.parametrize("batched", [None, False])
@pytest.mark.parametrize("raw_view, feature_view", [("crop", "crop"), ("mask", "mask"), ("highlight", "highlight_tokens"),
                                                     ("red_circle", "highlight_attention")])
def test_every_tensor_stays_on_the_model_device(meta_clip, both_paths, monkeypatch, raw_view, feature_view, batched):
    """The whole engine (every raw and feature view, both crop paths, LGCA's steps) runs with the
    model on another device than the host's and hands features back only through ``tensor_crops.to_host``,
    at the end: no host tensor meets a device tensor on the way."""
    import glocal.geometry.tensor_crops as tensor_crops

    images, ids, kwargs, reference, *_ = both_paths
    left = []

    def to_host(features):
        if features is not None:
            left.append(features.device.type)
            return torch.zeros(features.shape)
        return None

    monkeypatch.setattr(tensor_crops, "to_host", to_host)
    kwargs = {**kwargs, "abs_config": ABSConfig(n_crops=5, raw_augment=raw_view, feature_augment=feature_view)}
    features, record = encode_features(meta_clip, images, ids, ALL_NEEDS, engine=EngineConfig(batch_size=16, batched_crops=batched), **kwargs)
    assert left == ["meta"] * (4 + 3)  # full, raw, feat, wca, then LGCA's three steps
    assert features.need("raw").shape == reference.need("raw").shape and [s.shape for s in features.need("lgca")] == [s.shape for s in reference.need("lgca")]
    assert len(record.boxes["lgca_boxes"]) == len(images)


def test_reference_path_and_attention_sources_keep_to_the_model_device(meta_clip, tiny_dino_dir, both_paths, monkeypatch):
    """The reference extractor (the GPU benchmark's baseline) and the attention sources, with their
    models on ``meta``: every view, LGCA, DINO and CLIP attention run without a host tensor meeting
    a device one. Copies to the host of meta tensors give zeros of the right shape."""
    from glocal.encode.attention import ClipAttention, DinoAttention

    images, ids, kwargs, reference, *_ = both_paths
    real_cpu = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: torch.zeros(t.shape, dtype=t.dtype) if t.is_meta else real_cpu(t, *a, **k))
    for raw_view, feature_view in (("mask", "mask"), ("highlight", "highlight_tokens"), ("crop", "highlight_attention"), ("red_circle", "crop")):
        config = ABSConfig(n_crops=5, raw_augment=raw_view, feature_augment=feature_view)
        features, _ = extract_features(meta_clip, images, ids, ALL_NEEDS, batch_size=8, **{**kwargs, "abs_config": config})
        assert features.need("feat").shape == reference.need("feat").shape and [s.shape for s in features.need("lgca")] == [s.shape for s in reference.need("lgca")]
    dino = DinoAttention.from_pretrained(str(tiny_dino_dir), device="meta")
    for source in (dino, ClipAttention(meta_clip)):
        assert source.maps(iter(images)).shape == (len(images), source.grid, source.grid)
