import pytest
import torch
from PIL import Image

from glocal.encode.attention import ClipAttention, DinoAttention, UniformAttention
from glocal.backbones import load_backbone


def test_run_from_invariant_every_layer(tiny_clip):
    x = torch.randn(3, 3, tiny_clip.image_size, tiny_clip.image_size)
    reference = tiny_clip.encode_images(x)
    assert torch.allclose(reference.norm(dim=-1), torch.ones(3), atol=1e-5)
    for layer in range(tiny_clip.num_layers + 1):
        tokens = tiny_clip.tokens_before(x, layer)
        assert tokens.shape == (3, 1 + tiny_clip.grid**2, 32)
        assert torch.allclose(tiny_clip.run_from(tokens, layer), reference, atol=1e-5), layer
    with pytest.raises(ValueError, match="out of range"):
        tiny_clip.tokens_before(x, tiny_clip.num_layers + 1)


def test_zero_attention_bias_is_a_no_op_and_a_real_bias_is_not(tiny_clip):
    x = torch.randn(2, 3, tiny_clip.image_size, tiny_clip.image_size)
    layer = tiny_clip.num_layers - 1
    tokens = tiny_clip.tokens_before(x, layer)
    plain = tiny_clip.run_from(tokens, layer)
    zero = tiny_clip.run_from(tokens, layer, torch.zeros(2, tokens.shape[1]))
    assert torch.allclose(plain, zero, atol=1e-6)
    bias = torch.zeros(2, tokens.shape[1])
    bias[:, 1:5] = 5.0
    assert not torch.allclose(plain, tiny_clip.run_from(tokens, layer, bias), atol=1e-4)


def test_encode_text_normalised_and_batched(tiny_clip):
    texts = [f"a photo of a thing number {i}." for i in range(300)]  # > one text batch
    emb = tiny_clip.encode_text(texts)
    assert emb.shape == (300, tiny_clip.embed_dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(300), atol=1e-5)
    assert torch.allclose(emb[:3], tiny_clip.encode_text(texts[:3]), atol=1e-5)


def test_real_tokenizer_matches_openai_ids(shared):
    from glocal.tiny import load_tokenizer

    tok = load_tokenizer(shared / "clip-tokenizer")
    assert tok("a photo of a cat.")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 269, 49407]


def test_character_tokenizer_round_trip():
    from glocal.tiny import character_tokenizer

    tok = character_tokenizer()
    ids = tok("a cat")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 2 + 4
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == "acat"


@pytest.mark.parametrize("size", [(341, 256), (256, 400), (56, 56), (20, 13)])
def test_preprocess_matches_hf_processor(tiny_clip_dir, tiny_clip, size):
    from transformers import CLIPImageProcessor

    g = torch.Generator().manual_seed(0)
    array = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    image = Image.fromarray(array)
    processor = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(tiny_clip.preprocess(image), expected, atol=1e-5)
    assert tiny_clip.preprocess(image.convert("L")).shape == (3, 56, 56)


def test_load_backbone_rejects_unknown_family(tiny_dino_dir):
    with pytest.raises(ValueError, match="no glocal backbone adapter"):
        load_backbone(str(tiny_dino_dir))


def test_dino_like_vit_round_trip_attention(tiny_dino_dir):
    source = DinoAttention.from_pretrained(str(tiny_dino_dir))
    images = [Image.new("RGB", (300, 200), (200, 10, 10)), Image.new("L", (64, 90), 128)]
    maps = source.maps(images)
    assert maps.shape == (2, 14, 14) and source.grid == 14
    # the CLS row sums to one over all keys; patches get all but the CLS->CLS share
    assert ((maps.sum(dim=(1, 2)) > 0) & (maps.sum(dim=(1, 2)) <= 1 + 1e-5)).all()
    # compare with transformers' own eager attentions on the same input
    from glocal.backbones.preprocess import stretch_preprocess

    out = source.model(pixel_values=stretch_preprocess(images[0], 224)[None], output_attentions=True)
    expected = out.attentions[-1][0, :, 0, 1:].mean(0).reshape(14, 14)
    assert torch.allclose(maps[0], expected, atol=1e-6)


def test_attention_maps_stream_in_batches(tiny_dino_dir, tiny_clip):
    """A generator of images (as the stage hands over a streamed shard) gives the same maps as a
    list, across a partial last batch; no images give an empty (0, g, g) tensor."""
    g = torch.Generator().manual_seed(3)
    images = [Image.fromarray((torch.rand(40 + 9 * i, 70, 3, generator=g) * 255).to(torch.uint8).numpy()) for i in range(5)]
    dino = DinoAttention.from_pretrained(str(tiny_dino_dir))
    dino.batch_size = 2
    for source in (dino, ClipAttention(tiny_clip, batch_size=2)):
        whole = source.maps(images)
        assert whole.shape == (5, source.grid, source.grid)
        assert torch.equal(source.maps(im for im in images), whole)
        assert torch.allclose(source.maps(images[3:]), whole[3:], atol=1e-6)  # batch composition changes nothing but GEMM rounding
        assert source.maps(iter([])).shape == (0, source.grid, source.grid)
    assert UniformAttention(14).maps(im for im in images).shape == (5, 14, 14)


def test_clip_attention_and_uniform(tiny_clip):
    images = [Image.new("RGB", (80, 60), (0, 100, 0))]
    maps = ClipAttention(tiny_clip).maps(images)
    assert maps.shape == (1, tiny_clip.grid, tiny_clip.grid)
    assert 0 < maps.sum().item() <= 1 + 1e-5
    uniform = UniformAttention(14).maps(images * 3)
    assert uniform.shape == (3, 14, 14) and torch.allclose(uniform.sum(dim=(1, 2)), torch.ones(3))


def test_clip_cls_attention_equals_eager_attention(tiny_clip_dir):
    from transformers import CLIPModel

    backbone = load_backbone(str(tiny_clip_dir))
    eager = CLIPModel.from_pretrained(str(tiny_clip_dir), attn_implementation="eager")
    x = torch.randn(2, 3, 56, 56)
    out = eager.vision_model(pixel_values=x, output_attentions=True)
    expected = out.attentions[-1][:, :, 0, 1:].mean(1).reshape(2, 7, 7)
    assert torch.allclose(backbone.cls_attention(x), expected, atol=1e-5)
