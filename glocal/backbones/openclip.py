"""open_clip models (``pip install "glocal[open_clip]"``), on open_clip's own modules.

A model is named as open_clip names it:

- ``open_clip:ARCH/TAG``: ``open_clip.create_model_and_transforms(ARCH, pretrained=TAG)``, e.g.
  ``open_clip:ViT-B-32/laion2b_s34b_b79k``; TAG may instead be a checkpoint file
  (``open_clip:ViT-B-16/ckpts/epoch_32.pt``);
- ``hf-hub:ORG/REPO``: a checkpoint in open_clip's hub format (``open_clip_config.json`` and its
  weights), e.g. ``hf-hub:timm/ViT-B-16-SigLIP``;
- a local folder in that format (``open_clip_config.json`` beside the weights).

ViT towers (``open_clip.transformer.VisionTransformer``) are seen through the same five operations
as every backbone: ``_embeds`` (patches, class token, positions, ``ln_pre``) -> blocks of
``visual.transformer.resblocks`` -> ``_pool`` (``ln_post``, the class token or the mean) ->
``proj``; so ``run_from(tokens_before(x, L), L)`` is open_clip's own ``encode_image``. Trunks
without a token grid glocal can cut (timm trunks, ConvNeXt, the modified ResNets, MobileCLIP) run
the full-image and raw-crop methods through ``encode_image``; feature-space methods are refused for
them by name before any compute (``token_grid_problem``).

Preprocessing is read off the model's ``preprocess_cfg`` (size, resize mode, interpolation,
mean / std) into the same PIL pipeline as the other families, with torchvision's centre-crop
rounding, since open_clip's transform is torchvision's ``Resize`` + ``CenterCrop``: "shortest"
-> short side, then the centre square; "squash" -> stretched to the square; "longest" (resize the
long side, pad) is refused. open_clip converts to RGB after cropping, glocal before resizing: the
same pixels for RGB and greyscale images.

The model's identity (what keys its stored artifacts) is its weights: the checkpoint file's bytes
for a tag or a file, the hub commit for ``hf-hub:``, the files' bytes for a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from glocal.backbones.base import normalise, register_backbone
from glocal.backbones.preprocess import PreprocessSpec, clip_preprocess

PREFIX = "open_clip:"
HUB_PREFIX = "hf-hub:"
TEXT_BATCH = 256
INSTALL = 'open_clip models need the open_clip extra: pip install "glocal[open_clip]"'
RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "random": Image.BICUBIC}  # open_clip: "random" is bicubic at inference


def is_open_clip(model: str | None) -> bool:
    """Whether a model argument names an open_clip model (not a transformers checkpoint)."""
    if not model:
        return False
    return model.startswith((PREFIX, HUB_PREFIX)) or (Path(model).is_dir() and (Path(model) / "open_clip_config.json").is_file())


def _open_clip():
    try:
        import open_clip
    except ModuleNotFoundError:
        raise ValueError(INSTALL) from None
    return open_clip


def parse(model: str) -> tuple[str, str | None]:
    """A model argument -> (open_clip model name, pretrained tag or file, or None)."""
    if model.startswith(PREFIX):
        arch, _, pretrained = model[len(PREFIX):].partition("/")
        if not arch:
            raise ValueError(f"{model}: name an open_clip model as open_clip:ARCH/TAG, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k")
        return arch, pretrained or None
    if model.startswith(HUB_PREFIX):
        return model, None
    return f"local-dir:{Path(model).resolve()}", None


def model_config(model: str) -> dict:
    """The model's architecture config (``embed_dim``, ``vision_cfg``, ``text_cfg``) without its weights."""
    name, _ = parse(model)
    if name.startswith("local-dir:"):
        return json.loads((Path(name[len("local-dir:"):]) / "open_clip_config.json").read_text())["model_cfg"]
    if name.startswith(HUB_PREFIX):
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(name[len(HUB_PREFIX):], "open_clip_config.json")).read_text())["model_cfg"]
    config = _open_clip().get_model_config(name)
    if config is None:
        raise ValueError(f"{model}: open_clip has no model {name!r} (`python -c \"import open_clip; print(open_clip.list_models())\"` lists them)")
    return config


def token_grid_problem(model: str) -> str | None:
    """Why a model's image tower has no token grid the feature-space methods can cut (None: it has
    one): read off its config, before any weights are loaded. A config that cannot be read here (a
    hub model not downloaded while offline) is no answer: ``check_models`` names that problem, and
    a trunk without a grid still refuses ABS when it loads."""
    try:
        vision = model_config(model).get("vision_cfg", {})
    except Exception:  # noqa: BLE001 -- unreadable config: reported by check_models, not here
        return None
    if vision.get("timm_model_name"):
        return f"its image tower is the timm trunk {vision['timm_model_name']!r}, not a ViT with a class token and a patch grid"
    if isinstance(vision.get("layers"), (list, tuple)):
        return "its image tower is a ResNet (no patch tokens)"
    return None


def checkpoint_problem(model: str) -> str | None:
    """Why a model cannot be loaded here (unknown name or tag, not downloaded while offline), in
    well under a second and before any weights are read; None when it can."""
    name, pretrained = parse(model)
    if name.startswith("local-dir:"):
        return None
    open_clip = _open_clip()
    if name.startswith(HUB_PREFIX):
        return _hub_problem(name[len(HUB_PREFIX):], model)
    if name not in open_clip.list_models():
        return f"open_clip has no model {name!r} (`open_clip.list_models()` lists them)"
    if pretrained is None or Path(pretrained).is_file():
        return None
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        return f"open_clip has no weights {pretrained!r} for {name} (known: {', '.join(tags) or 'none'}); or give a checkpoint file"
    config = open_clip.get_pretrained_cfg(name, pretrained)
    if config.get("hf_hub"):
        return _hub_problem(config["hf_hub"].strip("/"), model)
    return None if _cached_url(config.get("url", "")) else _offline_problem(model)


def _hub_problem(repo: str, model: str) -> str | None:
    from glocal.backbones.identity import HUB_PROBLEMS, _hub_lookup

    commit, problem = _hub_lookup(repo)
    return None if commit else HUB_PROBLEMS[problem].format(model=repo)


def _cached_url(url: str) -> Path | None:
    """open_clip's cache of a URL download (``~/.cache/clip/<file name>``), when present."""
    path = Path("~/.cache/clip").expanduser() / Path(url).name
    return path if url and path.is_file() else None


def _offline_problem(model: str) -> str | None:
    from glocal.backbones.identity import _offline

    return "not downloaded yet and HF_HUB_OFFLINE is set: load it once on a connected machine" if _offline() else None


def identity(model: str) -> str:
    """What keys the model's artifacts: its weights' bytes or hub commit."""
    from glocal.backbones.identity import _hub_commit, file_digest

    name, pretrained = parse(model)
    if name.startswith(HUB_PREFIX):
        return f"open_clip:hub:{name[len(HUB_PREFIX):]}@{_hub_commit(name[len(HUB_PREFIX):]) or 'unresolved'}"
    if pretrained and Path(pretrained).is_file():
        return f"open_clip:{name}:file:{file_digest(Path(pretrained))}"
    if pretrained:
        config = _open_clip().get_pretrained_cfg(name, pretrained)
        if config.get("hf_hub"):
            repo = config["hf_hub"].strip("/")
            return f"open_clip:{name}/{pretrained}:hub:{repo}@{_hub_commit(repo) or 'unresolved'}"
        cached = _cached_url(config.get("url", ""))
        return f"open_clip:{name}/{pretrained}:" + (file_digest(cached) if cached else "unresolved")
    return f"open_clip:{name}:random-init"


def spec_from(preprocess_cfg: dict, name: str) -> PreprocessSpec:
    size = preprocess_cfg.get("size", 224)
    side = size if isinstance(size, int) else size[0]
    if not isinstance(size, int) and size[0] != size[1]:
        raise ValueError(f"{name}: a non-square input ({size}) has no square token grid")
    mode = preprocess_cfg.get("resize_mode", "shortest")
    if mode == "longest":
        raise ValueError(f"{name}: resize_mode 'longest' (resize the long side, then pad) is not supported; "
                         "its padded borders would be cropped as image")
    return PreprocessSpec(resize=int(side), crop=int(side), mean=tuple(preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
                          std=tuple(preprocess_cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
                          resample=RESAMPLE[preprocess_cfg.get("interpolation", "bicubic")], stretch=mode == "squash",
                          crop_rounding="round")


@register_backbone("open_clip", model_types=())
class OpenClipBackbone:
    family = "open_clip"

    def __init__(self, model, tokenizer, spec: PreprocessSpec, name: str = "open_clip"):
        self.model, self.tokenizer, self.spec, self.name = model.eval(), tokenizer, spec, name
        visual = model.visual
        size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
        self.image_size = int(size)
        if spec.crop != self.image_size:
            raise ValueError(f"{name}: the preprocessing crops {spec.crop}px but the image tower expects {self.image_size}px")
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.embed_dim = int(visual.output_dim)
        self.has_grid = hasattr(visual, "transformer") and hasattr(visual, "_embeds") and hasattr(visual, "conv1")
        if self.has_grid:
            self.grid = int(visual.grid_size[0])
            self.num_layers = len(visual.transformer.resblocks)
            self.num_prefix_tokens = 1  # the class token
        else:  # no token grid: the whole tower is one opaque block whose input is the pixels
            self.grid, self.num_layers, self.num_prefix_tokens = 0, 1, 0

    @classmethod
    def from_pretrained(cls, id_or_dir: str, device="cpu", dtype=torch.float32):
        open_clip = _open_clip()
        name, pretrained = parse(id_or_dir)
        # create_model sets model.visual.preprocess_cfg, the transform's source (its transforms are not needed)
        model = open_clip.create_model(name, pretrained=pretrained, device=device, precision="fp32").to(device=device, dtype=dtype)
        tokenizer = open_clip.get_tokenizer(name)
        preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        return cls(model, tokenizer, spec_from(preprocess_cfg, id_or_dir), name=str(id_or_dir))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return clip_preprocess(image, self.spec)

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.empty(0, self.embed_dim)
        out = []
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = self.tokenizer(list(texts[start : start + TEXT_BATCH])).to(self.device)
            out.append(normalise(self.model.encode_text(tokens)).cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalise(self.model.encode_image(pixels.to(self.device, self.dtype)))

    # ------------------------------------------------------------------ the token grid (ViTs)
    def _blocks(self):
        if not self.has_grid:
            raise ValueError(f"{self.name}: {token_grid_problem(self.name) or 'no token grid'}; "
                             "feature-space methods (ABS) cannot run on it, the full-image and raw-crop ones can")
        return self.model.visual.transformer.resblocks

    def _batch_first(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, W) <-> the blocks' layout: towers built with batch_first=False take (T, B, W)."""
        if getattr(self.model.visual.transformer, "batch_first", True):
            return x
        return x.transpose(0, 1)

    def _opaque(self, layer: int, attention_bias=None) -> bool:
        """A trunk without a token grid is one block whose input is the pixels: ``tokens_before(x, 0)``
        is ``x`` and ``run_from(x, 0)`` is ``encode_images(x)``, so the engine's whole-image path
        works; anything that needs the grid is refused by name."""
        if self.has_grid:
            return False
        if layer != 0 or attention_bias is not None:
            self._blocks()
        return True

    @torch.inference_mode()
    def tokens_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        if self._opaque(layer):
            return pixels.to(self.device, self.dtype)
        blocks = self._blocks()
        self._check_layer(layer)
        hidden = self._batch_first(self.model.visual._embeds(pixels.to(self.device, self.dtype)))
        for block in blocks[:layer]:
            hidden = block(hidden)
        return self._batch_first(hidden)

    @torch.inference_mode()
    def run_from(self, tokens: torch.Tensor, layer: int, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        if self._opaque(layer, attention_bias):
            return self.encode_images(tokens)
        blocks = self._blocks()
        self._check_layer(layer)
        visual = self.model.visual
        mask = None
        if attention_bias is not None:
            attn = blocks[0].attn
            if not isinstance(attn, torch.nn.MultiheadAttention):
                raise ValueError(f"{self.name}: the highlight-attention ablation needs nn.MultiheadAttention blocks")
            b, t = attention_bias.shape
            mask = attention_bias.to(self.device, self.dtype)[:, None, None, :].expand(b, attn.num_heads, t, t).reshape(b * attn.num_heads, t, t)
        hidden = self._batch_first(tokens.to(self.device, self.dtype))
        for block in blocks[layer:]:
            hidden = block(hidden, attn_mask=mask)
        pooled, _ = visual._pool(self._batch_first(hidden))
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return normalise(pooled)

    @torch.inference_mode()
    def cls_attention(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, g, g): the last block's class-token attention over patches, head mean."""
        blocks = self._blocks()
        last = self.num_layers - 1
        hidden = self.tokens_before(pixels, last)
        block = blocks[last]
        attn = block.attn
        if not isinstance(attn, torch.nn.MultiheadAttention):
            raise ValueError(f"{self.name}: CLS attention needs nn.MultiheadAttention blocks; use DINO attention (--attention-model)")
        x = block.ln_1(hidden)
        b, t, w = x.shape
        heads, head_dim = attn.num_heads, w // attn.num_heads
        weight, bias = attn.in_proj_weight, attn.in_proj_bias
        q = torch.nn.functional.linear(x[:, :1], weight[:w], None if bias is None else bias[:w]).view(b, 1, heads, head_dim).transpose(1, 2)
        k = torch.nn.functional.linear(x, weight[w : 2 * w], None if bias is None else bias[w : 2 * w]).view(b, t, heads, head_dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)).float() / head_dim**0.5, dim=-1)
        return weights[:, :, 0, 1:].mean(dim=1).reshape(b, self.grid, self.grid).cpu()

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer {layer} out of range 0..{self.num_layers} for {self.name}")
