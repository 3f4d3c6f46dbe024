"""The batched crop-and-encode engine: the same features as ``glocal.extract`` (same boxes, same
seeds), computed with tensors and large fixed-size batches.

- Crop + resize + normalise on tensors, on the model's device (``glocal.tensor_crops``): on a GPU
  all boxes of an image at once, bit-identical to the PIL path; on the CPU one antialiased
  ``interpolate`` per box, within ``PIXEL_TOLERANCE`` (two 8-bit levels). Feature windows of an
  image are resized together too (``crop_windows_batched``).
- Raw crops of many images are packed into one encoder forward of ``batch_size`` crops, and the
  feature-space windows of many images into one last-blocks pass.
- The full-image feature comes from the same forward that gives the tokens feature windows start
  from (``run_from(tokens_before(x, L), L)`` equals ``encode_images(x)``): one forward saved.
- Memory is bounded by ``batch_size`` (crops waiting to be encoded) plus one image's crops,
  whatever the number of images.
- bf16 autocast on CUDA by default, float32 on CPU (bf16 on CPU is an option: slower on CPUs
  without AMX, see benchmarks/RESULTS.md).
Raw-space ablation views other than ``crop`` (mask, highlight, red circle) go through PIL.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
import torch
from PIL import Image

from glocal.augment import raw_augment
from glocal.backbones.preprocess import to_rgb
from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.crop_kinds import CROP_KINDS, kind_config_key, plan_boxes
from glocal.crops import grow_boxes
from glocal.extract import CropRecord, feature_layer
from glocal.feature_views import crop_windows_batched, feature_augment
from glocal.features import ImageFeatures
from glocal.methods.lgca import crop_saliency
from glocal.plans import abs_plan, input_frame, wca_boxes
from glocal.progress import tick
from glocal.tensor_crops import PIXEL_TOLERANCE, crop_pixels, image_tensor, to_device  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = 128  # crops per encoder forward; bounds memory (3*S*S floats per crop)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    batched_crops: bool | None = None  # all boxes of an image in two matmuls; None: on any device but the CPU
    compile: bool = False  # torch.compile the crop and window forwards (one graph per backbone; the last batch is padded)


class _Packer:
    """Collects model inputs of many images and encodes them in fixed-size batches, scattering the
    features back to (image, slot). Holds at most ``batch_size`` pending inputs after a flush."""

    def __init__(self, encode, batch_size: int):
        self.encode, self.batch_size = encode, batch_size
        self.inputs: list[torch.Tensor] = []
        self.extra: list[torch.Tensor | None] = []
        self.targets: list[tuple[torch.Tensor, int, int]] = []
        self.pending = 0

    def add(self, inputs: torch.Tensor, out: torch.Tensor, row: int, extra: torch.Tensor | None = None) -> None:
        """inputs (n, ...) -> out[row, :n]."""
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start : start + self.batch_size]
            self.inputs.append(chunk)
            self.extra.append(None if extra is None else extra[start : start + self.batch_size])
            self.targets.append((out, row, start))
            self.pending += len(chunk)
            while self.pending >= self.batch_size:
                self._flush(self.batch_size)

    def finish(self) -> None:
        while self.pending:
            self._flush(self.pending)

    def _flush(self, count: int) -> None:
        take_inputs, take_extra, take_targets, taken = [], [], [], 0
        while taken < count:
            chunk, extra, (out, row, start) = self.inputs[0], self.extra[0], self.targets[0]
            n = min(len(chunk), count - taken)
            take_inputs.append(chunk[:n])
            take_extra.append(extra[:n] if extra is not None else None)
            take_targets.append((out, row, start, n))
            if n == len(chunk):
                self.inputs.pop(0), self.extra.pop(0), self.targets.pop(0)
            else:
                self.inputs[0], self.targets[0] = chunk[n:], (out, row, start + n)
                self.extra[0] = extra[n:] if extra is not None else None
            taken += n
        extra = None if take_extra[0] is None else torch.cat(take_extra)
        features = self.encode(torch.cat(take_inputs), extra).float()  # stays on the device: no sync per batch
        offset = 0
        for out, row, start, n in take_targets:
            out[row, start : start + n] = features[offset : offset + n]
            offset += n
        self.pending -= count


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _forwards(backbone, layer: int, engine: EngineConfig):
    """(crop forward, window forward) for the packers: the backbone's own, or with
    ``engine.compile`` compiled once per (backbone, layer) and fed full batches only, so one graph
    serves every call (dynamic=False; a padded last batch costs less than a recompile)."""
    if not engine.compile:
        return (lambda x, _: backbone.encode_images(x)), (lambda x, bias: backbone.run_from(x, layer, bias))
    cache = backbone.__dict__.setdefault("_compiled_forwards", {})
    if layer not in cache:
        # the undecorated methods: compiled graphs fail under inference_mode, the engine then runs under no_grad
        encode_images = getattr(type(backbone).encode_images, "__wrapped__", type(backbone).encode_images)
        run_from = getattr(type(backbone).run_from, "__wrapped__", type(backbone).run_from)
        cache[layer] = (torch.compile(lambda x: encode_images(backbone, x), dynamic=False),
                        torch.compile(lambda x, bias: run_from(backbone, x, layer, bias), dynamic=False))
    crops, windows = cache[layer]
    return _padded(lambda x, _: crops(x), engine.batch_size), _padded(windows, engine.batch_size)


def _padded(forward, batch_size: int):
    """forward(x, extra) on x padded with zeros to ``batch_size`` rows, the padding's outputs dropped."""

    def run(x, extra):
        n = len(x)
        if n < batch_size:
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
            extra = None if extra is None else torch.cat([extra, extra.new_zeros(batch_size - n, *extra.shape[1:])])
        return forward(x, extra)[:n]

    return run


def _to_host(features: torch.Tensor | None) -> torch.Tensor | None:
    """The one place features leave the model's device (a test swaps it to run on ``meta``)."""
    return None if features is None else features.cpu()


def encode_features(
    backbone,
    images: Iterable[Image.Image],
    image_ids: list[str],
    needs: set[str],
    *,
    abs_config: ABSConfig | None = None,
    wca_config: WCAConfig | None = None,
    lgca_config: LGCAConfig | None = None,
    attention_maps: torch.Tensor | None = None,
    attention_frame: str = "stretch",
    class_embeddings: torch.Tensor | None = None,
    engine: EngineConfig = EngineConfig(),
    **kind_configs,
) -> tuple[ImageFeatures, CropRecord]:
    """Drop-in for ``glocal.extract.extract_features`` (same arguments, same outputs within the
    engine's tolerance). ``images`` may be any iterable (e.g. a DataLoader decoding in workers);
    it is consumed once, in order. ``kind_configs``: ``kind:<name>`` -> the config of each
    registered crop kind in ``needs`` that has one (``glocal.crop_kinds``)."""
    if needs & {"raw", "feat"} and (abs_config is None or attention_maps is None):
        raise ValueError("ABS crops need abs_config and attention_maps")
    if "wca" in needs and wca_config is None:
        raise ValueError("WCA crops need wca_config")
    if "lgca" in needs and (lgca_config is None or class_embeddings is None):
        raise ValueError("LGCA crops need lgca_config and class_embeddings")
    device, spec, n_images, dim = backbone.device, backbone.spec, len(image_ids), backbone.embed_dim
    layer = feature_layer(backbone, abs_config.layer_id if abs_config is not None else None)
    record = CropRecord(attention=attention_maps)
    # features gather on the model's device and come back once at the end: a copy to the host per
    # batch would make the host wait for each forward instead of preparing the next crops
    full = torch.empty(n_images, 1, dim, device=device)
    raw = torch.empty(n_images, abs_config.n_crops, dim, device=device) if "raw" in needs else None
    feat = torch.empty(n_images, abs_config.n_crops, dim, device=device) if "feat" in needs else None
    wca = torch.empty(n_images, wca_config.n_crops, dim, device=device) if "wca" in needs else None
    raw_view = raw_augment(abs_config.raw_augment) if "raw" in needs else None
    window_view = None
    if "feat" in needs:  # the reference's per-window crop, batched (the other views are already)
        window_view = crop_windows_batched if abs_config.feature_augment == "crop" else feature_augment(abs_config.feature_augment)
    lgca_images: list[tuple[torch.Tensor, int, int]] = []
    box_kinds = [CROP_KINDS[name] for name in sorted(needs) if name in CROP_KINDS]
    kind_out: dict[str, torch.Tensor] = {}  # allocated at the first image, when N is known

    crop_forward, window_forward = _forwards(backbone, layer, engine)
    with torch.no_grad() if engine.compile else torch.inference_mode(), _autocast(device, engine.precision):
        crops = _Packer(crop_forward, engine.batch_size)
        windows = _Packer(window_forward, engine.batch_size)
        pending_full: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []

        def flush_full():
            # whole images: tokens before block L once, reused for the full feature and the windows
            if not pending_full:
                return
            pixels = torch.stack([p for _, p, _ in pending_full]).to(device)
            tokens = backbone.tokens_before(pixels, layer)
            full[to_device(np.array([i for i, _, _ in pending_full]), device), 0] = backbone.run_from(tokens, layer).float()
            for k, (i, _, wins) in enumerate(pending_full):
                if wins is not None:
                    views, bias = window_view(tokens[k], wins, backbone.num_prefix_tokens, backbone.grid)
                    windows.add(views, feat, i, bias)
            pending_full.clear()

        for i, (image, image_id) in enumerate(zip(images, image_ids)):
            image = to_rgb(image)
            host_pixels = image_tensor(image)
            pixels = to_device(host_pixels, device)
            width, height = image.size
            whole = torch.tensor([[0, 0, width, height]])
            plan = None
            if needs & {"raw", "feat"}:
                plan = abs_plan(attention_maps[i], width, height, backbone.grid, abs_config, image_id, attention_frame,
                                **input_frame(backbone.spec))
                record.raw_boxes.append(plan.raw_boxes)
                record.windows.append(plan.windows)
            tensor_raw = raw is not None and abs_config.raw_augment == "crop"
            boxes_wca = wca_boxes(width, height, wca_config, image_id) if wca is not None else None
            if boxes_wca is not None:
                record.wca_boxes.append(boxes_wca)
            kind_boxes = {k.name: plan_boxes(k, width, height, kind_configs.get(kind_config_key(k.name)), image_id) for k in box_kinds}
            for name, boxes in kind_boxes.items():
                record.kind_boxes.setdefault(name, []).append(boxes)
                if name not in kind_out:
                    kind_out[name] = torch.empty(n_images, len(boxes), dim, device=device)
                elif len(boxes) != kind_out[name].shape[1]:
                    raise ValueError(f"crop kind {name!r} planned {len(boxes)} boxes for {image_id!r}, {kind_out[name].shape[1]} before: "
                                     "a kind plans the same number for every image")
            # every pixel crop of the image in one call: one batched resize on a GPU
            parts = [whole] + ([plan.raw_boxes] if tensor_raw else []) + ([boxes_wca] if boxes_wca is not None else []) \
                + list(kind_boxes.values())
            inputs = crop_pixels(pixels, torch.cat([p.to(torch.int64) for p in parts]), spec, batched=engine.batched_crops)
            pending_full.append((i, inputs[0], plan.windows if plan is not None and feat is not None else None))
            if len(pending_full) * max(1, abs_config.n_crops if feat is not None else 1) >= engine.batch_size:
                flush_full()
            if tensor_raw:
                crops.add(inputs[1 : 1 + len(plan.raw_boxes)], raw, i)
            elif raw is not None:
                views = torch.stack([backbone.preprocess(raw_view(image, b.tolist())) for b in plan.raw_boxes])
                crops.add(to_device(views, device), raw, i)  # packed with the device's crops
            offset = 1 + (len(plan.raw_boxes) if tensor_raw else 0)
            if boxes_wca is not None:
                crops.add(inputs[offset : offset + len(boxes_wca)], wca, i)
                offset += len(boxes_wca)
            for name, boxes in kind_boxes.items():
                crops.add(inputs[offset : offset + len(boxes)], kind_out[name], i)
                offset += len(boxes)
            if "lgca" in needs:
                lgca_images.append((host_pixels, width, height))  # kept on the host: no copy back, no sync
            tick()  # the stage's bar in images (its crops are queued; LGCA's steps follow the shard)
        flush_full()
        crops.finish()
        windows.finish()
        features = ImageFeatures(full=_to_host(full[:, 0]), raw=_to_host(raw), feat=_to_host(feat), wca=_to_host(wca),
                                 extra={name: _to_host(out) for name, out in kind_out.items()})
        if "lgca" in needs:
            features.lgca, record.lgca_boxes = _lgca(backbone, lgca_images, image_ids, lgca_config, class_embeddings, crops, spec, engine.batched_crops)
    return features, record


def _lgca(backbone, images, image_ids, config: LGCAConfig, class_embeddings, packer: _Packer, spec, batched: bool | None):
    """Step by step across all images (a step's crops depend on the previous step's features)."""
    dim = backbone.embed_dim
    boxes = [wca_boxes(w, h, config, image_id, stream="lgca") for (_, w, h), image_id in zip(images, image_ids)]
    steps, step_boxes = [], [[b] for b in boxes]
    for t in range(config.steps + 1):
        n = boxes[0].shape[0]
        out = torch.empty(len(images), n, dim, device=backbone.device)
        for i, (pixels, _, _) in enumerate(images):
            packer.add(crop_pixels(to_device(pixels, backbone.device), boxes[i], spec, batched=batched), out, i)
        packer.finish()
        steps.append(_to_host(out))
        if t == config.steps:
            break
        saliency = crop_saliency(steps[-1], class_embeddings)  # on the host: the next boxes are planned there
        keep = torch.topk(saliency, min(config.top_k, n), dim=1).indices.sort(dim=1).values
        boxes = [grow_boxes(boxes[i][keep[i]], config.growth, w, h) for i, (_, w, h) in enumerate(images)]
        for i, b in enumerate(boxes):
            step_boxes[i].append(b)
    return steps, step_boxes
