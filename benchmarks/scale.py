"""Scaling of the evaluate flow over Dask workers: images/s in one process (no cluster), and on a
LocalCluster of 1 and 2 worker processes, each run in a fresh workspace (nothing skipped), with a
full-size random-weight CLIP ViT-B/32 vision tower (compute does not depend on weights).

    python benchmarks/scale.py                     # 36 drawn images, 6 shards, clip + wca at N=10
    python benchmarks/scale.py --workers 1 2 4 --images 96 --record

Prints one table (end-to-end and encode-stage images/s, and the encode speed-up over one worker);
--record appends it to benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from encode import TOWERS  # noqa: E402


def build_model(out: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from glocal.tiny import load_tokenizer

    tokenizer = load_tokenizer(None)
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=TOWERS["B32"], projection_dim=512)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)
    return out


def run(args) -> list[str]:
    from prefect.testing.utilities import prefect_test_harness

    import flows.evaluate as evaluate_mod
    from flows.cluster import cluster_flow
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    work = Path(tempfile.mkdtemp(prefix="glocal-scale-"))
    model = str(build_model(work / "clip-b32"))
    per_class = -(-args.images // 3)
    images = generate_images(work / "images", per_class=per_class)
    stage_seconds = {}
    real_run_shards = evaluate_mod.run_shards

    def timed_run_shards(stage, *a, **k):
        start = time.perf_counter()
        real_run_shards(stage, *a, **k)
        stage_seconds[stage] = time.perf_counter() - start

    evaluate_mod.run_shards = timed_run_shards
    rows = []
    with prefect_test_harness(server_startup_timeout=120):
        for setting in ["in-process", *args.workers]:
            db = str(work / f"w-{setting}.duckdb")
            count = ingest_folder(db, "shapes", str(images), shard_size=args.shard_size, limit=args.images)["images"]
            stage_seconds.clear()
            cluster, workers = (None, None) if setting == "in-process" else ("local", int(setting))
            start = time.perf_counter()
            with cluster_flow(evaluate_mod.evaluate, cluster, workers) as flow:
                flow(dataset="shapes", model=model, methods=args.methods.split(","), db=db, n_crops=args.n_crops, batch_size=args.batch_size)
            total = time.perf_counter() - start
            rows.append((str(setting), count, total, stage_seconds["encode"]))
            print(f"{setting}: {count} images, {total:.1f} s end to end, encode stage {stage_seconds['encode']:.1f} s", flush=True)
    base = next((r[3] for r in rows if r[0] == "1"), rows[0][3])
    lines = ["| workers | images | end-to-end s | end-to-end img/s | encode stage s | encode img/s | encode speed-up vs 1 worker |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for setting, count, total, encode in rows:
        lines.append(f"| {setting} | {count} | {total:.1f} | {count / total:.2f} | {encode:.1f} | {count / encode:.2f} | {base / encode:.2f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--images", type=int, default=36)
    parser.add_argument("--shard-size", type=int, default=6)
    parser.add_argument("--methods", default="clip,wca")
    parser.add_argument("--n-crops", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    lines = run(args)
    machine = f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores"
    header = (f"### Dask scaling, {datetime.date.today()} ({machine})\n\n{args.images} drawn images in shards of {args.shard_size}, "
              f"methods {args.methods}, N={args.n_crops}, full-size random ViT-B/32 vision tower, fp32, CPU; "
              "each setting in a fresh workspace.\n")
    table = header + "\n" + "\n".join(lines) + "\n"
    print(table)
    if args.record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
            f.write("\n" + table)


if __name__ == "__main__":
    main()
