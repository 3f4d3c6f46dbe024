"""Crop-and-encode benchmark: the batched engine vs a reference-style loop, against the machine's
dense GEMM rate (and the GPU's peak), on full-size random-weight CLIP towers (compute does not
depend on weights), ABS at N crops (raw + feature-space), on the shared sample photos.

    python benchmarks/encode.py                       # ViT-B/16 and B/32, 4 images, N=60
    python benchmarks/encode.py --models B16 --images 64 --batch-size 512   # on a GPU

Prints one table; --record appends it to benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import glocal.encode.engine as engine_mod  # noqa: E402
from glocal.backbones.clip import CLIPBackbone  # noqa: E402
from glocal.backbones.preprocess import PreprocessSpec  # noqa: E402
from glocal.config import ABSConfig  # noqa: E402
from glocal.data.demo_data import SHARED_SAMPLE, generate_images  # noqa: E402
from glocal.encode.cost import tower_of  # noqa: E402
from glocal.encode.engine import EngineConfig, encode_features  # noqa: E402
from glocal.encode.extract import extract_features  # noqa: E402
from glocal.data.shards import stream_images  # noqa: E402

TOWERS = {  # vision tower shapes of OpenAI CLIP
    "B16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16, image_size=224),
    "B32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=32, image_size=224),
    "L14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14, image_size=224),
    # a small tower at CLIP's input size: the dry run of benchmarks/gpu_check.py (the figures mean little)
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, patch_size=32, image_size=224),
}
# a tower with next to no compute, on thumbnails: what is left of the engine's time is host work
# (Python, dispatch, box geometry), which a GPU cannot hide and which caps images/s
HOST_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=4, image_size=16)
# dense bf16 peaks (no sparsity), TFLOP/s
GPU_PEAKS = {"H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.0}


def build_backbone(name: str, device: str, dtype=torch.float32) -> CLIPBackbone:
    from transformers import CLIPConfig, CLIPModel

    vision = TOWERS[name] if name in TOWERS else HOST_TOWER
    config = CLIPConfig(text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=49408),
                        vision_config=vision, projection_dim=512)
    torch.manual_seed(0)
    model = CLIPModel(config).to(device=device, dtype=dtype).eval()
    side = vision["image_size"]
    return CLIPBackbone(model, tokenizer=None, spec=PreprocessSpec(resize=side, crop=side), name=f"random-{name}")


def image_flops(vision: dict, n_crops: int) -> float:
    """The engine's work per image: 1 full forward (its tokens also feed the windows), N raw-crop
    forwards, N last-block passes over the windows: ``glocal.encode.cost``'s count, which the runs
    store."""
    tower = tower_of(vision)
    return (1 + n_crops) * tower.forward_flops() + n_crops * tower.block_flops(1)


def gemm_rate(device: str, dtype, size: int = 2048, seconds: float = 2.0) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - start)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def load_images(count: int, shard: Path | None = None):
    """(ids, decoded images); with ``shard``, the same photos' files are also written there as a
    webdataset shard, so the engine can be timed end to end (tar read + decode in the stage's
    reader and decoder threads, overlapped with the encoder)."""
    from glocal.data.images import open_image, read_dataset
    from glocal.data.shards import write_shard

    root = SHARED_SAMPLE if SHARED_SAMPLE.exists() else generate_images(Path("/tmp/glocal-bench-images"), per_class=max(1, count // 3 + 1))
    records, _ = read_dataset(root)
    records = records[:count]
    if shard is not None:
        write_shard(shard, [(r.image_id, 0, Path(r.path).read_bytes(), Path(r.path).suffix.lstrip(".")) for r in records])
    return [r.image_id for r in records], [open_image(r.path) for r in records]


class CropTimer:
    """Wall time spent in crop + resize + normalise (synchronised on a GPU)."""

    def __init__(self, device):
        self.device, self.seconds, self.real = device, 0.0, engine_mod.crop_pixels

    def __enter__(self):
        def timed(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = self.real(*args, **kwargs)
            sync(self.device)
            self.seconds += time.perf_counter() - start
            return out

        engine_mod.crop_pixels = timed
        return self

    def __exit__(self, *exc):
        engine_mod.crop_pixels = self.real


def timed_run(device: str, run) -> tuple[float, float]:
    """(seconds of ``run()``, of which in crop calls). The crop timer synchronises around every crop
    call, which on a GPU would stop the host from running ahead of the device: there the seconds
    come from a plain run, and the crop share from a second, timed run."""

    def once(with_timer: bool) -> tuple[float, float]:
        with CropTimer(device) if with_timer else contextlib.nullcontext() as crops:
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            return time.perf_counter() - start, crops.seconds if crops else 0.0

    if device == "cpu":  # no synchronisation to distort, and a B/16 run takes a minute
        return once(True)
    seconds, _ = once(False)
    timed_seconds, crop_seconds = once(True)
    return seconds, seconds * crop_seconds / timed_seconds


def run(args, ids: list[str], images: list, shard: Path) -> list[str]:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision if args.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    cfg = ABSConfig(n_crops=args.n_crops)
    gemm = gemm_rate(device, dtype)
    if device == "cpu":
        machine = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    else:
        machine = torch.cuda.get_device_name()
    peak = next((v for k, v in GPU_PEAKS.items() if k in machine), None) if device == "cuda" else None
    lines = [f"### {datetime.date.today()} - {machine}, torch {torch.__version__}, {precision}",
             "", f"{len(images)} images (shared sample photos, real sizes), ABS N={args.n_crops} (raw + feature crops), "
             f"engine batch {args.batch_size}, fed from a webdataset shard (read + decode included, in the stage's threads), "
             f"the reference from decoded images; dense {precision} GEMM 2048^2: {gemm / 1e9:.0f} GFLOP/s"
             + (f"; device peak {peak:.0f} TFLOP/s" if peak else ""), "",
             "| tower | engine img/s | reference img/s | engine / reference | engine TFLOP/s | of GEMM | "
             + ("of peak | " if peak else "") + "crop+preprocess share |",
             "|---|---|---|---|---|---|" + ("---|" if peak else "") + "---|"]
    gemm_samples = [gemm]
    for name in args.models:
        backbone = build_backbone(name, device)
        g = backbone.grid
        maps = torch.rand(len(images), g, g, generator=torch.Generator().manual_seed(0))
        needs = {"full", "raw", "feat"}
        timings = {}
        for compiled in (False, True) if args.compile else (False,):
            config = EngineConfig(batch_size=args.batch_size, precision=precision, compile=compiled)
            # warm-up on two images (allocator, kernels; with compile, the compilation)
            encode_features(backbone, images[:2], ids[:2], needs, abs_config=cfg, attention_maps=maps[:2], engine=config)
            # as the encode stage reads a shard: its reader and decoder threads feed the engine
            timings[compiled] = timed_run(device, lambda: encode_features(backbone, stream_images(shard)[1], ids, needs, abs_config=cfg,
                                                                          attention_maps=maps, engine=config))
        autocast = torch.autocast(device, dtype=dtype) if precision != "fp32" else torch.autocast(device, enabled=False)
        ref_images = images[: args.reference_images or len(images)]
        start = time.perf_counter()
        with autocast:
            for i, (image_id, image) in enumerate(zip(ids, ref_images)):
                # per image: PIL crop + preprocess each box, that image's crops as one batch
                extract_features(backbone, [image], [image_id], needs, abs_config=cfg, attention_maps=maps[i : i + 1], batch_size=args.n_crops)
        sync(device)
        reference_s = time.perf_counter() - start
        gemm_samples.append(gemm_rate(device, dtype))  # the machine's rate drifts (shared VM): measured around each tower
        gemm = max(gemm_samples)
        for compiled, (engine_s, crop_s) in timings.items():
            achieved = image_flops(TOWERS[name], args.n_crops) * len(images) / engine_s
            engine_ips, reference_ips = len(images) / engine_s, len(ref_images) / reference_s
            label = f"ViT-{name[0]}/{name[1:]}" if name[1:].isdigit() else name
            row = (f"| {label}{' compiled' if compiled else ''} | {engine_ips:.3f} | {reference_ips:.3f} | "
                   f"{engine_ips / reference_ips:.2f}x | {achieved / 1e12:.3f} | {100 * achieved / gemm:.0f} % | "
                   + (f"{100 * achieved / (peak * 1e12):.0f} % | " if peak else "") + f"{100 * crop_s / engine_s:.1f} % |")
            print(row, flush=True)
            lines.append(row)
    lines[2] = lines[2].replace(f"GEMM 2048^2: {gemm_samples[0] / 1e9:.0f} GFLOP/s",
                                f"GEMM 2048^2: {max(gemm_samples) / 1e9:.0f} GFLOP/s (best of {len(gemm_samples)} measurements, "
                                f"{min(gemm_samples) / 1e9:.0f} at worst)")
    return lines


def host_overhead(args, device: str, ids: list[str], images: list) -> list[str]:
    """Engine time per image with HOST_TOWER on thumbnails (short side 24), per crop path, and the
    torch ops per image (on a GPU each is about one kernel launch)."""
    from torch.profiler import ProfilerActivity, profile

    thumbs = [im.convert("RGB").resize((max(1, 24 * im.width // min(im.size)), max(1, 24 * im.height // min(im.size)))) for im in images]
    backbone = build_backbone("host", device)
    maps = torch.rand(len(thumbs), backbone.grid, backbone.grid, generator=torch.Generator().manual_seed(0))
    cfg, needs = ABSConfig(n_crops=args.n_crops), {"full", "raw", "feat"}
    lines = ["", f"Host work per image ({device}; {HOST_TOWER['num_hidden_layers']}-block width-{HOST_TOWER['hidden_size']} tower, "
             f"{HOST_TOWER['image_size']} px inputs, thumbnails, ABS N={args.n_crops}, {len(thumbs)} images; with next to no "
             "arithmetic, times are Python and dispatch):", "",
             "| crop path | engine ms/img | of which crop calls ms/img | torch ops/img | images/s ceiling |", "|---|---|---|---|---|"]
    for label, batched in (("per-box interpolate loop", False), ("batched matmuls", True)):
        config = EngineConfig(batch_size=args.batch_size, batched_crops=batched)
        run_once = lambda: encode_features(backbone, thumbs, ids, needs, abs_config=cfg, attention_maps=maps, engine=config)  # noqa: E731
        run_once()
        seconds, crop_seconds = timed_run(device, lambda: [run_once() for _ in range(3)])
        per_image = seconds / (3 * len(thumbs))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_once()
        ops = sum(event.count for event in prof.key_averages() if event.key.startswith("aten::")) / len(thumbs)
        row = f"| {label} | {1e3 * per_image:.2f} | {1e3 * crop_seconds / (3 * len(thumbs)):.2f} | {ops:.0f} | {1 / per_image:.0f} |"
        print(row, flush=True)
        lines.append(row)
    return lines


def crop_paths(args, device: str, ids: list[str], images: list) -> list[str]:
    """Each crop implementation on the real photos with their ABS boxes at 224 px: ms per image
    and the largest difference from the PIL path in 8-bit levels."""
    from glocal.backbones.preprocess import clip_preprocess
    from glocal.geometry.plans import abs_plan
    from glocal.geometry.tensor_crops import crop_pixels_batched, crop_pixels_loop, image_tensor

    spec, cfg = PreprocessSpec(resize=224, crop=224), ABSConfig(n_crops=args.n_crops)
    rgb = [im.convert("RGB") for im in images]
    boxes = [abs_plan(torch.rand(14, 14, generator=torch.Generator().manual_seed(k)), *im.size, 14, cfg, i).raw_boxes
             for k, (i, im) in enumerate(zip(ids, rgb))]
    pixels = [image_tensor(im).to(device) for im in rgb]
    paths = {"PIL (crop + preprocess per box)": lambda k: torch.stack([clip_preprocess(rgb[k].crop(tuple(b)), spec) for b in boxes[k].tolist()]),
             "per-box interpolate loop": lambda k: crop_pixels_loop(pixels[k], boxes[k], spec),
             "batched matmuls, float64": lambda k: crop_pixels_batched(pixels[k], boxes[k], spec, dtype=torch.float64),
             "batched matmuls, float32": lambda k: crop_pixels_batched(pixels[k], boxes[k], spec, dtype=torch.float32)}
    reference = [paths["PIL (crop + preprocess per box)"](k) for k in range(len(rgb))]
    lines = ["", f"Crop paths ({device}, {len(rgb)} photos x {args.n_crops} ABS boxes, 224 px):", "",
             "| crop path | ms/img | max difference from PIL (8-bit levels) |", "|---|---|---|"]
    for label, path in paths.items():
        path(0)
        sync(device)
        start = time.perf_counter()
        outs = [path(k) for k in range(len(rgb))]
        sync(device)
        per_image = (time.perf_counter() - start) / len(rgb)
        levels = max((o.cpu() - r).abs().max().item() for o, r in zip(outs, reference)) * min(spec.std) * 255
        row = f"| {label} | {1e3 * per_image:.1f} | {levels:.2f} |"
        print(row, flush=True)
        lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["B16", "B32"], choices=sorted(TOWERS))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--reference-images", type=int, default=None, help="time the reference loop on fewer images (default: all)")
    parser.add_argument("--n-crops", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's forwards (compile time is in the warm-up)")
    parser.add_argument("--host-only", action="store_true", help="only the host-work table (tiny tower, thumbnails)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    shard = Path(tempfile.mkdtemp(prefix="glocal-bench-")) / "photos.tar"
    ids, images = load_images(args.images, shard)
    lines = [] if args.host_only else run(args, ids, images, shard)
    lines += host_overhead(args, device, ids, images) + crop_paths(args, device, ids, images)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
