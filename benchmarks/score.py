"""Scale benchmark of the score stage: synthetic encode artifacts (random unit features, float16,
the real Parquet layout, every feature kind the ten methods need: full, 60 raw crops, 60 feature
windows, 60 WCA crops, LGCA's 60 + 3 x 20 steps, ZERO's / MTA's / AWT's 63 views, BiFTA's 100 kept crops; D=512), a text
bank of 1000 classes x 50 CuPL sentences (plus 80 templates, 4-12 CLIP-D and Waffle sentences, AWT's 1 + 50 prompts per
class), and labels in real
webdataset shards of 256, scored by the real stage (``flows.evaluate.score_stage``: per-shard
compute, registration, one bulk insert of the predictions, accuracy in SQL).

Each (size, methods) point runs in a fresh process, so its peak RSS is its own.

    python benchmarks/score.py                                   # 1,000 and 10,000 images
    python benchmarks/score.py --sizes 1000 10000 --cheap-sizes 50000 --record

Prints, per size and method: images/s, peak RSS; for ABS, soft matching's FLOP/s as a fraction of
a float32 2048^2 GEMM measured in the same process (the kernel alone, and the whole stage); the
catalog's bulk-insert rows/s; bytes on disk per image; and scoring's FLOPs against encoding's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ALL = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "abs", "lgca", "zero", "mta", "awt", "bifta"]
CHEAP = ["clip", "clip_e", "clip_d", "waffle", "cupl"]  # full-image methods: cheap enough for 50,000 images on 2 cores
CLASSES, SENTENCES, TEMPLATES, DIM, SHARD = 1000, 50, 80, 512, 256
# crops per image of each stored feature kind (the default presets: ABS N=60, WCA N=60, LGCA 60 + 3 x 20)
KINDS = {"full": 1, "raw": 60, "feat": 60, "wca": 60, "lgca_0": 60, "lgca_1": 20, "lgca_2": 20, "lgca_3": 20,
         "views": 63,  # ZERO's and MTA's 63 augmented views (64 with the original); AWT scores the first 50
         "bifta": 100}  # BiFTA's kept crops (all 100 kept here: its most expensive case)


def unit(generator, *shape):
    import torch

    return torch.nn.functional.normalize(torch.randn(*shape, generator=generator), dim=-1)


def build_workspace(work: Path, images: int, kinds: dict[str, int]) -> dict:
    """A catalog with a dataset of ``images`` synthetic images: shards, encode artifacts, a text
    artifact. -> {db, dataset, encode_key, text_key, seconds, images_rows_per_s}."""
    import numpy as np
    import pyarrow as pa
    import torch

    from glocal.data.shards import write_shard
    from glocal.text.bank import Padded, TextBank
    from storage import Catalog, fixed_lists, write_parquet_atomic
    from tasks.artifact_formats import bank_table

    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"ws-{images}.duckdb"
    catalog = Catalog(db)
    dataset, classnames = f"synthetic-{images}", [f"class {c}" for c in range(CLASSES)]
    generator = torch.Generator().manual_seed(images)
    shard_dir = catalog.artifact_root / "shards" / dataset
    encode_key, text_key = f"encode-{images}", f"text-{images}"
    manifest = []
    for shard in range((images + SHARD - 1) // SHARD):
        ids = [f"img{i:06d}" for i in range(shard * SHARD, min(images, (shard + 1) * SHARD))]
        labels = torch.randint(0, CLASSES, (len(ids),), generator=generator).tolist()
        write_shard(shard_dir / f"shard-{shard:05d}.tar", [(i, label, b"", "jpg") for i, label in zip(ids, labels)])
        manifest += [(i, shard, label, 224, 224, "") for i, label in zip(ids, labels)]
        columns = {"image_id": pa.array(ids)}
        for kind, crops in kinds.items():
            columns[kind] = fixed_lists(unit(generator, len(ids), crops, DIM).reshape(len(ids), -1).half().numpy(), np.float16)
        path = write_parquet_atomic(pa.table(columns), catalog.artifact_path("encode", encode_key, shard))
        catalog.register_artifact("encode", encode_key, shard, path, len(ids), {"dataset": dataset, "synthetic": True})
    insert_start = time.perf_counter()
    catalog.register_dataset(dataset, "synthetic", classnames, shard + 1, str(shard_dir), manifest, [])
    images_rows_per_s = len(manifest) / (time.perf_counter() - insert_start)
    lengths = torch.randint(4, 13, (2, CLASSES), generator=generator)
    bank = TextBank(classnames=classnames, prompts=unit(generator, CLASSES, DIM), templates=unit(generator, CLASSES, TEMPLATES, DIM),
                    descriptions=Padded(unit(generator, CLASSES, SENTENCES, DIM), torch.ones(CLASSES, SENTENCES, dtype=torch.bool)),
                    clip_d=Padded.from_lists([unit(generator, int(k), DIM) for k in lengths[0]]),
                    waffle=Padded.from_lists([unit(generator, int(k), DIM) for k in lengths[1]]),
                    awt=Padded(unit(generator, CLASSES, 1 + SENTENCES, DIM), torch.ones(CLASSES, 1 + SENTENCES, dtype=torch.bool)))
    table = bank_table(bank)
    path = write_parquet_atomic(table, catalog.artifact_path("text", text_key, 0))
    catalog.register_artifact("text", text_key, 0, path, len(table), {"synthetic": True})
    return {"db": str(db), "dataset": dataset, "encode_key": encode_key, "text_key": text_key,
            "seconds": time.perf_counter() - start, "images_rows_per_s": images_rows_per_s}


def score_point(ws: dict, methods: list[str], memory: int | None) -> dict:
    """The real score stage on one workspace, in this (fresh) process."""
    import glocal.methods.abs as abs_module
    from encode import gemm_rate
    from flows.evaluate import score_stage
    from glocal.methods.budget import parse_memory
    from glocal.config import config_to_dict, content_key
    from glocal.run.plan import build_runs
    from storage import Catalog
    from tasks.score import compute_score

    import torch

    rate_before = gemm_rate("cpu", torch.float32)
    catalog = Catalog(ws["db"])
    info = catalog.dataset(ws["dataset"])
    runs = build_runs(methods)
    configs = {r.spec.name: config_to_dict(r.config) for r in runs}
    run_id = content_key("bench", methods, time.time())[:12]
    catalog.start_run(run_id, ws["dataset"], "synthetic", "none", methods, configs, ws["text_key"], encode_key=ws["encode_key"])
    kernel = {"seconds": 0.0}
    real_kernel = abs_module.soft_matching_scores

    def timed_kernel(*args, **kwargs):
        t = time.perf_counter()
        out = real_kernel(*args, **kwargs)
        kernel["seconds"] += time.perf_counter() - t
        return out

    abs_module.soft_matching_scores = timed_kernel
    insert = {}
    real_store = catalog.store_predictions

    def timed_store(*args, **kwargs):
        t = time.perf_counter()
        out = real_store(*args, **kwargs)
        insert["seconds"] = time.perf_counter() - t
        return out

    catalog.store_predictions = timed_store
    start = time.perf_counter()
    text_files = [str(catalog.artifact_paths("text", ws["text_key"])[0])]
    accuracy = score_stage(catalog, info, run_id, configs, ws["encode_key"], text_files, parse_memory(memory), compute=compute_score)
    seconds = time.perf_counter() - start
    rate = max(rate_before, gemm_rate("cpu", torch.float32))
    images = accuracy[0][3]
    with catalog.connect(read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id]).fetchone()[0]
    score_dir = catalog.artifact_root / "score"
    return {"methods": methods, "images": images, "seconds": seconds, "insert_seconds": insert["seconds"], "rows": rows,
            "kernel_seconds": kernel["seconds"], "gemm_flops": rate, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "prediction_bytes": sum(p.stat().st_size for p in score_dir.rglob("shard-*.parquet"))}


def catalog_point(work: Path, images: int = 50_000, methods: int = 8, shards: int = 196) -> tuple[int, float]:
    """ImageNet's prediction rows (50,000 images x 8 methods) from per-shard Parquet files into a
    fresh catalog through ``Catalog.store_predictions`` (bulk insert + accuracy in SQL). -> (rows, rows/s)."""
    import numpy as np
    import torch

    from storage import Catalog, write_parquet_atomic
    from tasks.score import predictions_table

    catalog = Catalog(work / "catalog-bench.duckdb")
    catalog.start_run("bench", "synthetic", "synthetic", "none", [f"m{m}" for m in range(methods)], {}, "text")
    generator = torch.Generator().manual_seed(0)
    paths, per_shard = [], -(-images // shards)
    for shard in range(shards):
        ids = [f"img{i:06d}" for i in range(shard * per_shard, min(images, (shard + 1) * per_shard))]
        labels = torch.randint(0, CLASSES, (len(ids),), generator=generator)
        tables = [predictions_table("bench", f"m{m}", "preset", ids, labels, torch.randn(len(ids), CLASSES, generator=generator)) for m in range(methods)]
        import pyarrow as pa

        paths.append(write_parquet_atomic(pa.concat_tables(tables), work / "catalog-bench" / f"shard-{shard:05d}.parquet"))
    start = time.perf_counter()
    catalog.store_predictions("bench", paths, [f"m{m}" for m in range(methods)])
    seconds = time.perf_counter() - start
    with catalog.connect(read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    assert rows == images * methods and np.isfinite(seconds)
    return rows, rows / seconds


def abs_flops_per_image() -> float:
    """Soft matching's multiply-adds: every crop (60 raw + 60 windows) against every sentence."""
    return 2.0 * (KINDS["raw"] + KINDS["feat"]) * CLASSES * SENTENCES * DIM


def encode_flops_per_image() -> float:
    """Encoding the same features with ViT-B/16 (benchmarks/encode.py's count): ABS's full image,
    60 raw crops and 60 window passes, plus 60 WCA crops, LGCA's 60 + 3 x 20 crops and the 63 views."""
    from encode import TOWERS, image_flops

    from glocal.encode.cost import tower_of

    vision = TOWERS["B16"]
    forward = tower_of(vision).forward_flops()
    return image_flops(vision, KINDS["raw"]) + (KINDS["wca"] + KINDS["views"] + sum(v for k, v in KINDS.items() if k.startswith("lgca"))) * forward


def run_child(ws: dict, methods: list[str], memory: str | None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps({"ws": ws, "methods": methods, "memory": memory})],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {methods} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000], help="dataset sizes scored with every method")
    parser.add_argument("--cheap-sizes", nargs="*", type=int, default=[], help=f"sizes scored only with {','.join(CHEAP)}")
    parser.add_argument("--score-memory", default=None, help="the stage's --score-memory (default 256M)")
    parser.add_argument("--workdir", help="where the synthetic workspaces go (default: a temporary folder; ~250 KB per image)")
    parser.add_argument("--methods", default=",".join(ALL), help="the methods scored at --sizes (default: all twelve)")
    parser.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(score_point(spec["ws"], spec["methods"], spec["memory"])))
        return
    import torch

    work = Path(args.workdir or tempfile.mkdtemp(prefix="glocal-score-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    chosen = args.methods.split(",")
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {','.join(ALL)}")
    points = [(n, chosen) for n in args.sizes] + [(n, CHEAP) for n in args.cheap_sizes]
    rows, catalog_rows, setups = [], [], {}
    for images, methods in points:
        kinds = KINDS if methods is chosen else {"full": 1}
        ws = build_workspace(work / f"n{images}-{len(kinds)}", images, kinds)
        encode_bytes = sum(p.stat().st_size for p in (Path(ws["db"]).parent / "artifacts" / "encode").rglob("*.parquet"))
        setups[images] = ws
        print(f"{images} images: workspace built in {ws['seconds']:.0f} s ({encode_bytes / images / 1024:.0f} KiB of features per image); "
              f"images table {ws['images_rows_per_s']:,.0f} rows/s", flush=True)
        catalog_rows.append((images, "images (register_dataset)", ws["images_rows_per_s"]))
        for method in methods:
            result = run_child(ws, [method], args.score_memory)
            row = dict(result, size=images, method=method, encode_bytes=encode_bytes)
            rows.append(row)
            catalog_rows.append((images, f"predictions ({method})", result["rows"] / result["insert_seconds"]))
            print(f"  {method:7s} {images / result['seconds']:9.1f} img/s  peak RSS {result['peak_rss'] / 2**20:7.0f} MiB  "
                  f"insert {result['rows'] / result['insert_seconds']:,.0f} rows/s", flush=True)
        if methods is chosen and len(chosen) > 1 and images == min(args.sizes):  # once: every chosen method in one run
            result = run_child(ws, chosen, args.score_memory)
            rows.append(dict(result, size=images, method=f"all {len(chosen)}", encode_bytes=encode_bytes))
            catalog_rows.append((images, f"predictions (all {len(chosen)})", result["rows"] / result["insert_seconds"]))
            print(f"  all {len(chosen):<3d} {images / result['seconds']:9.1f} img/s  peak RSS {result['peak_rss'] / 2**20:7.0f} MiB  "
                  f"insert {result['rows'] / result['insert_seconds']:,.0f} rows/s", flush=True)
    bulk_rows, bulk_rate = catalog_point(work)
    print(f"catalog: {bulk_rows:,} prediction rows from 196 shard files in one store_predictions: {bulk_rate:,.0f} rows/s", flush=True)
    catalog_rows.append((50_000, f"predictions, 8 methods ({bulk_rows:,} rows from 196 files, one transaction)", bulk_rate))
    tables = format_tables(rows, catalog_rows)
    machine = f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · torch {torch.__version__}"
    text = (f"### Score stage at scale, {datetime.date.today()} ({machine})\n\n`python benchmarks/score.py "
            f"--sizes {' '.join(map(str, args.sizes))}" + (f" --methods {args.methods}" if chosen != ALL else "") + (f" --cheap-sizes {' '.join(map(str, args.cheap_sizes))}" if args.cheap_sizes else "")
            + "`: synthetic float16 features (D=512), 1000 classes x 50 sentences, shards of 256, each point a fresh process.\n\n" + tables)
    print("\n" + text)
    if args.record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
            f.write("\n" + text)


def format_tables(rows: list[dict], catalog_rows: list[tuple]) -> str:
    lines = ["| images | method | images/s | peak RSS MiB | stage s | of which bulk insert s | features on disk KiB/img | predictions on disk B/img |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['size']:,} | {r['method']} | {r['size'] / r['seconds']:.1f} | {r['peak_rss'] / 2**20:.0f} | {r['seconds']:.1f} | "
                     f"{r['insert_seconds']:.2f} | {r['encode_bytes'] / r['size'] / 1024:.0f} | {r['prediction_bytes'] / r['size']:.0f} |")
    lines += ["", "ABS soft matching against a float32 2048^2 GEMM measured in the same process "
              f"({abs_flops_per_image() / 1e9:.2f} GFLOP per image: 120 crops x 1000 classes x 50 sentences x D=512):", "",
              "| images | GEMM GFLOP/s | kernel GFLOP/s | kernel / GEMM | whole stage / GEMM |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["method"] == "abs":
            flops = abs_flops_per_image() * r["size"]
            lines.append(f"| {r['size']:,} | {r['gemm_flops'] / 1e9:.0f} | {flops / r['kernel_seconds'] / 1e9:.0f} | "
                         f"{flops / r['kernel_seconds'] / r['gemm_flops']:.0%} | {flops / r['seconds'] / r['gemm_flops']:.0%} |")
    lines += ["", "Catalog bulk inserts (Arrow):", "", "| images | rows | rows/s |", "| --- | --- | --- |"]
    lines += [f"| {n:,} | {what} | {rate:,.0f} |" for n, what, rate in catalog_rows]
    encode = encode_flops_per_image()
    score = abs_flops_per_image() + 2.0 * DIM * CLASSES * (1 + 1 + 1 + 1 + 1 + 2 + 2) + 2.0 * DIM * sum(KINDS.values())
    lines += ["", f"Scoring all eight methods vs encoding the same features (FLOP counts): encode {encode / 1e12:.2f} TFLOP per image "
              f"(ViT-B/16: ABS full + 60 crops + 60 windows, WCA 60 crops, LGCA 60 + 3 x 20 crops); score {score / 1e9:.2f} GFLOP per image "
              f"(ABS soft matching, then one (D x C) product per other method and term): **{score / encode:.2%}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
