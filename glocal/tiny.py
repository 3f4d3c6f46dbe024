"""Tiny random-weight models saved with ``save_pretrained``, for tests and the offline demo.

Real weights come from the Hugging Face hub by id on a connected machine; these exist so that the
whole pipeline runs offline on any machine. Compute does not depend on weights, so the code paths
are the real ones; only the accuracy is meaningless (chance level).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

SHARED_TOKENIZER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clip-tokenizer"


def _byte_level_alphabet() -> list[str]:
    # GPT-2 / CLIP byte-to-unicode table: printable bytes map to themselves, the rest to U+0100+.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def character_tokenizer():
    """A CLIP tokenizer with a character-level vocabulary (no merges): used when the real CLIP BPE
    files are not available, so that a fresh clone still runs offline."""
    from transformers import CLIPTokenizer

    alphabet = _byte_level_alphabet()
    vocab = {}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def load_tokenizer(tokenizer_dir: str | os.PathLike | None = None):
    """The real CLIP BPE tokenizer from ``tokenizer_dir`` (or ../shared/data/clip-tokenizer when it
    exists), else the character-level fallback."""
    from transformers import CLIPTokenizer

    path = Path(tokenizer_dir) if tokenizer_dir else SHARED_TOKENIZER
    if (path / "vocab.json").exists() and (path / "merges.txt").exists():
        return CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    if tokenizer_dir:
        raise FileNotFoundError(f"{path}: expected vocab.json and merges.txt (a CLIP BPE tokenizer)")
    return character_tokenizer()


def build_tiny_clip(
    out_dir: str | os.PathLike,
    *,
    image_size: int = 56,
    patch_size: int = 8,
    hidden: int = 32,
    layers: int = 3,
    heads: int = 4,
    projection_dim: int = 24,
    tokenizer_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Path:
    """Save a random ``CLIPModel`` + tokenizer + image processor to ``out_dir``; returns the dir."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    text = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=2, num_attention_heads=heads, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        image_size=image_size, patch_size=patch_size, hidden_size=hidden,
        intermediate_size=hidden * 2, num_hidden_layers=layers, num_attention_heads=heads,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(out)
    return out


def build_tiny_dino(
    out_dir: str | os.PathLike, *, patch_size: int = 16, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0
) -> Path:
    """Save a random DINO-like ``ViTModel`` (224 px input, so a 14x14 map at patch 16)."""
    from transformers import ViTConfig, ViTModel

    out = Path(out_dir)
    config = ViTConfig(
        image_size=224, patch_size=patch_size, hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=heads,
    )
    torch.manual_seed(seed)
    ViTModel(config, add_pooling_layer=False).save_pretrained(out)
    (out / "glocal_tiny.json").write_text(json.dumps({"random_weights": True}))
    return out


def _vit_vision(image_size: int, patch_size: int, hidden: int, layers: int, heads: int) -> dict:
    return dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden, intermediate_size=hidden * 2,
                num_hidden_layers=layers, num_attention_heads=heads)


def build_tiny_altclip(out_dir: str | os.PathLike, *, image_size: int = 56, patch_size: int = 8, hidden: int = 32, layers: int = 3,
                       heads: int = 4, projection_dim: int = 24, tokenizer_dir=None, seed: int = 0) -> Path:
    """A random ``AltCLIPModel`` (a small RoBERTa text tower over the CLIP vocabulary)."""
    from transformers import AltCLIPConfig, AltCLIPModel, CLIPImageProcessor

    out = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=80, project_dim=hidden, pad_token_id=1)
    config = AltCLIPConfig(text_config=text, vision_config=_vit_vision(image_size, patch_size, hidden, layers, heads),
                           projection_dim=projection_dim)
    torch.manual_seed(seed)
    AltCLIPModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(out)
    return out


def build_tiny_siglip(out_dir: str | os.PathLike, *, image_size: int = 56, patch_size: int = 8, hidden: int = 32, layers: int = 3,
                      heads: int = 4, tokenizer_dir=None, seed: int = 0, tokenizer=None, text_tokens: int = 16) -> Path:
    """A random ``SiglipModel`` (text padded to ``text_tokens``) with a SigLIP image processor (stretch,
    bilinear, 0.5/0.5); ``tokenizer``: another than the CLIP one (SigLIP 2's Gemma tokenizer)."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    out = Path(out_dir)
    tokenizer = tokenizer or load_tokenizer(tokenizer_dir)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=text_tokens, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    config = SiglipConfig(text_config=text, vision_config=_vit_vision(image_size, patch_size, hidden, layers, heads))
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(out)
    return out


def build_tiny_align(out_dir: str | os.PathLike, *, image_size: int = 64, tokenizer_dir=None, seed: int = 0) -> Path:
    """A random ``AlignModel``: a 4-block EfficientNet (8 x 8 final map at 64 px) and a small BERT,
    with an EfficientNet image processor that stretches to 72 px and centre-crops 64."""
    from transformers import AlignConfig, AlignModel, EfficientNetImageProcessor

    out = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id)
    vision = dict(image_size=image_size, width_coefficient=1.0, depth_coefficient=1.0, kernel_sizes=[3, 3, 3],
                  in_channels=[32, 16, 24], out_channels=[16, 24, 32], strides=[1, 2, 2], num_block_repeats=[1, 1, 2],
                  expand_ratios=[1, 2, 2], depthwise_padding=[], hidden_dim=64)
    config = AlignConfig(text_config=text, vision_config=vision, projection_dim=32)
    torch.manual_seed(seed)
    model = AlignModel(config)
    # transformers' init (std 0.02 convs) shrinks activations ~1e4x per block, to ~1e-13 after four:
    # below normalize's eps. Fan-in init keeps them O(1), as trained weights are.
    for module in model.vision_model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    EfficientNetImageProcessor(size={"height": 72, "width": 72}, crop_size={"height": image_size, "width": image_size}, do_center_crop=True,
                               rescale_factor=1 / 127.5, rescale_offset=True, do_normalize=False, include_top=False).save_pretrained(out)
    return out


def build_tiny_groupvit(out_dir: str | os.PathLike, *, image_size: int = 56, patch_size: int = 8, hidden: int = 32, heads: int = 4,
                        tokenizer_dir=None, seed: int = 0) -> Path:
    """A random ``GroupViTModel``: stages of depth 2, 1, 1 grouping 49 patches into 8, then 4 groups."""
    from transformers import CLIPImageProcessor, GroupViTConfig, GroupViTModel

    out = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden, intermediate_size=hidden * 2,
                  num_hidden_layers=4, depths=[2, 1, 1], num_group_tokens=[8, 4, 0], num_output_groups=[8, 4, 4],
                  num_attention_heads=heads)
    config = GroupViTConfig(text_config=text, vision_config=vision, projection_dim=24, projection_intermediate_dim=48)
    torch.manual_seed(seed)
    GroupViTModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(out)
    return out


def build_tiny_metaclip2(out_dir: str | os.PathLike, *, image_size: int = 56, patch_size: int = 8, hidden: int = 32, layers: int = 3,
                         heads: int = 4, projection_dim: int = 24, tokenizer_dir=None, seed: int = 0) -> Path:
    """A random ``MetaClip2Model`` (CLIP's towers; the text tower pools at the config's EOS id, set to the tokenizer's)."""
    from transformers import CLIPImageProcessor, MetaClip2Config, MetaClip2Model

    out = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = MetaClip2Config(text_config=text, vision_config=_vit_vision(image_size, patch_size, hidden, layers, heads),
                             projection_dim=projection_dim)
    torch.manual_seed(seed)
    MetaClip2Model(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(out)
    return out


def gemma_character_tokenizer():
    """A Gemma tokenizer (what SigLIP 2 checkpoints ship) over bytes and printable ASCII, both cases,
    so that lowercasing changes the ids."""
    import string

    from transformers import GemmaTokenizer

    vocab = {token: i for i, token in enumerate(("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"))}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for ch in "\u2581" + string.ascii_letters + string.digits + string.punctuation:
        vocab.setdefault(ch, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[])


def build_tiny_siglip2(out_dir: str | os.PathLike, *, image_size: int = 56, patch_size: int = 8, hidden: int = 32, layers: int = 3,
                       heads: int = 4, seed: int = 0) -> Path:
    """A random fixed-resolution SigLIP 2: ``SiglipModel`` weights with a Gemma tokenizer, text
    padded to 64 tokens, as google/siglip2-*-patchP-SIZE ship."""
    return build_tiny_siglip(out_dir, image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers, heads=heads, seed=seed,
                             tokenizer=gemma_character_tokenizer(), text_tokens=64)


TINY_BUILDERS = {"clip": build_tiny_clip, "altclip": build_tiny_altclip, "siglip": build_tiny_siglip, "align": build_tiny_align,
                 "groupvit": build_tiny_groupvit, "metaclip2": build_tiny_metaclip2, "siglip2": build_tiny_siglip2}


# open_clip towers (glocal[open_clip]): not in TINY_BUILDERS, which the transformers families share
OPEN_CLIP_TINY = {
    # a ViT with QuickGELU (OpenAI's and most LAION checkpoints)
    "vit-quickgelu": {"embed_dim": 24, "quick_gelu": True,
                      "vision_cfg": {"image_size": 56, "layers": 3, "width": 32, "patch_size": 8, "head_width": 8},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}},
    # a ViT with GELU, squashed input and mean pooling (DFN / SigLIP-style choices)
    "vit-gelu": {"embed_dim": 24,
                 "vision_cfg": {"image_size": 48, "layers": 2, "width": 32, "patch_size": 8, "head_width": 8, "pool_type": "avg"},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}},
    # a modified ResNet: no token grid (the full-image and raw-crop methods only)
    "resnet": {"embed_dim": 24, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}},
}
OPEN_CLIP_PREPROCESS = {"vit-quickgelu": {}, "vit-gelu": {"resize_mode": "squash", "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3},
                        "resnet": {}}


def build_tiny_open_clip(out_dir: str | os.PathLike, kind: str = "vit-quickgelu", seed: int = 0) -> Path:
    """A random open_clip model in open_clip's folder format (``open_clip_config.json`` with its
    ``model_cfg`` and ``preprocess_cfg``, and ``open_clip_model.safetensors``); needs open_clip."""
    import open_clip
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = OPEN_CLIP_TINY[kind]
    preprocess = {"size": config["vision_cfg"]["image_size"], **OPEN_CLIP_PREPROCESS[kind]}
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}, indent=1))
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    return out
