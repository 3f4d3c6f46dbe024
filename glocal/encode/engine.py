"""The batched crop-and-encode engine: the same features as ``glocal.encode.extract`` (same boxes, same
seeds), computed with tensors and large fixed-size batches.

- Crop + resize + normalise on tensors, on the model's device (``glocal.geometry.tensor_crops``): on a GPU
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

from glocal.geometry import tensor_crops
from glocal.backbones.preprocess import to_rgb
from glocal.kinds.registry import ImageItem
from glocal.kinds.features import CropRecord, ImageFeatures
from glocal.kinds import kind_runs, kinds_for, token_layer
from glocal.progress import tick
from glocal.geometry.tensor_crops import PIXEL_TOLERANCE, crop_pixels, image_tensor, to_device  # noqa: F401 (re-exported)


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


def encode_features(
    backbone,
    images: Iterable[Image.Image],
    image_ids: list[str],
    needs: set[str],
    *,
    attention_maps: torch.Tensor | None = None,
    attention_frame: str = "stretch",
    class_embeddings: torch.Tensor | None = None,
    engine: EngineConfig = EngineConfig(),
    **configs,
) -> tuple[ImageFeatures, CropRecord]:
    """Drop-in for ``glocal.encode.extract.extract_features`` (same arguments, same outputs within the
    engine's tolerance). ``images`` may be any iterable (e.g. a DataLoader decoding in workers);
    it is consumed once, in order. ``configs``: each needed kind's config under its config key
    (``abs_config=``, ``wca_config=``, ``lgca_config=``, ``**{"kind:<name>": ...}``)."""
    kinds = kinds_for(needs)
    runs = kind_runs(kinds, backbone, image_ids, configs, attention_maps, attention_frame, class_embeddings)
    device, spec, n_images = backbone.device, backbone.spec, len(image_ids)
    layer = token_layer(backbone, kinds, configs)
    # features gather on the model's device and come back once at the end: a copy to the host per
    # batch would make the host wait for each forward instead of preparing the next crops
    full = torch.empty(n_images, 1, backbone.embed_dim, device=device)

    crop_forward, window_forward = _forwards(backbone, layer, engine)
    with torch.no_grad() if engine.compile else torch.inference_mode(), _autocast(device, engine.precision):
        crops = _Packer(crop_forward, engine.batch_size)
        windows = _Packer(window_forward, engine.batch_size)
        for run in runs:
            run.crops, run.windows, run.batched_crops = crops, windows, engine.batched_crops
        encoders = [kind.encoder(run) for kind, run in zip(kinds, runs)]
        window_encoders = [e for e in encoders if e.windows_per_image]
        windows_per_image = max(1, sum(e.windows_per_image for e in encoders))
        pending_full: list[tuple[int, torch.Tensor]] = []

        def flush_full():
            # whole images: tokens before block L once, reused for the full feature and the windows
            if not pending_full:
                return
            pixels = torch.stack([p for _, p in pending_full]).to(device)
            tokens = backbone.tokens_before(pixels, layer)
            full[to_device(np.array([i for i, _ in pending_full]), device), 0] = backbone.run_from(tokens, layer).float()
            for k, (i, _) in enumerate(pending_full):
                for encoder in window_encoders:
                    encoder.tokens(i, tokens[k])
            pending_full.clear()

        for i, (image, image_id) in enumerate(zip(images, image_ids)):
            image = to_rgb(image)
            host_pixels = image_tensor(image)
            item = ImageItem(i, image_id, image, host_pixels, to_device(host_pixels, device), *image.size)
            planned = [encoder.boxes(item) for encoder in encoders]
            # every pixel crop of the image (the whole image first) in one call: one batched resize on a GPU
            boxes = [torch.tensor([[0, 0, item.width, item.height]])] + [b.to(torch.int64) for b in planned if b is not None]
            inputs = crop_pixels(item.pixels, torch.cat(boxes), spec, batched=engine.batched_crops)
            pending_full.append((i, inputs[0]))
            if len(pending_full) * windows_per_image >= engine.batch_size:
                flush_full()
            offset = 1
            for encoder, planned_boxes in zip(encoders, planned):
                n = 0 if planned_boxes is None else len(planned_boxes)
                encoder.add(item, inputs[offset : offset + n] if planned_boxes is not None else None)
                offset += n
            tick()  # the stage's bar in images (its crops are queued; LGCA's steps follow the shard)
        flush_full()
        crops.finish()
        windows.finish()
        features, record = ImageFeatures(full=tensor_crops.to_host(full[:, 0]), image_ids=list(image_ids)), CropRecord(attention=attention_maps)
        for kind, encoder in zip(kinds, encoders):
            output = encoder.finish()
            if isinstance(output.features, torch.Tensor):
                output.features = tensor_crops.to_host(output.features)
            features.crops[kind.name], record.outputs[kind.name] = output.features, output
    return features, record
