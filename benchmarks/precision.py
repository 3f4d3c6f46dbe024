"""fp32 against bf16 on the sample photos (#30): how many predictions of every method differ, and
what bf16 saved in the encode stage, for a tiny random CLIP and one with a full-size ViT-B/32
image tower (random weights, seeded; a small text tower, which the image side does not see).

Each tower: one workspace of the first ``--images`` sample photos (ImageNet's 1000 classes, its
shipped text), ``glocal eval`` of every registered method at ``--n-crops`` with
``--precision fp32`` and then ``bf16`` (the real CLI, each with its temporary Prefect server), the
predictions compared in SQL, the encode stage's images/s read from ``stage_time``.

    python benchmarks/precision.py                 # 40 photos, N = 8
    python benchmarks/precision.py --record        # append the table to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def build_towers(folder: Path) -> dict[str, Path]:
    """tiny: glocal.tiny's; B32: OpenAI's ViT-B/32 image tower shape, a 64-wide text tower."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from glocal.tiny import build_tiny_clip, load_tokenizer

    towers = {"tiny": build_tiny_clip(folder / "tiny")}
    out = folder / "B32"
    tokenizer = load_tokenizer()  # the shared CLIP tokenizer when present
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=32, image_size=224)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)
    towers["B32"] = out
    return towers


def compare(db: str, runs: dict[str, str]) -> list[tuple[str, int, int]]:
    """(method, images, predictions that differ between the fp32 and the bf16 run)."""
    from storage import Catalog

    _, rows, _ = Catalog(db).query(
        "SELECT a.method, count(*), count(*) FILTER (WHERE a.prediction != b.prediction) FROM predictions a "
        f"JOIN predictions b ON a.method = b.method AND a.image_id = b.image_id WHERE a.run_id = '{runs['fp32']}' "
        f"AND b.run_id = '{runs['bf16']}' GROUP BY a.method ORDER BY a.method")
    return rows


def encode_rate(db: str, run_id: str) -> float:
    from storage import Catalog

    _, rows, _ = Catalog(db).query(f"SELECT images_per_s FROM stage_time WHERE run_id = '{run_id}' AND stage = 'encode'")
    return rows[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--n-crops", type=int, default=8)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.cli import main as glocal
    from glocal.methods import method_names

    work = Path(tempfile.mkdtemp(prefix="glocal-precision-"))
    towers = build_towers(work / "models")
    methods = ",".join(method_names())
    lines = [f"### {datetime.date.today()} - fp32 vs bf16 predictions, {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
             f"{args.images} sample photos (ImageNet's 1000 classes, shipped text), every method at N = {args.n_crops}, "
             "random seeded towers, the shared DINOv2 attention; `python benchmarks/precision.py`",
             "", "| tower | method | images | predictions that differ | encode img/s fp32 | bf16 | bf16 / fp32 |", "|---|---|---|---|---|---|---|"]
    for name, model in towers.items():
        db = str(work / f"{name}.duckdb")
        runs = {}
        for precision in ("fp32", "bf16"):  # `glocal eval`: the folder ingested once, then evaluated
            out = work / f"{name}-{precision}.json"
            assert glocal(["eval", str(SHARED / "images" / "imagenet-sample"), "--classnames", str(SHARED / "classnames" / "imagenet.json"),
                           "--limit", str(args.images), "--model", str(model), "--attention-model", str(SHARED / "models" / "dinov2-small-imgfocus"),
                           "--text-dataset", "imagenet", "--methods", methods, "--n-crops", str(args.n_crops), "--precision", precision,
                           "--output", str(out), "--db", db]) == 0
            import json

            runs[precision] = json.loads(out.read_text())["run_id"]
        fp32, bf16 = encode_rate(db, runs["fp32"]), encode_rate(db, runs["bf16"])
        for i, (method, images, differ) in enumerate(compare(db, runs)):
            rates = f"{fp32:.2f} | {bf16:.2f} | {bf16 / fp32:.2f}x" if i == 0 else " | | "
            lines.append(f"| {name if i == 0 else ''} | {method} | {images} | {differ} | {rates} |")
    lines.append(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
