"""Commands that ingest and evaluate: `demo` (the whole pipeline on sample images), `ingest`, `eval` (ingest if needed, evaluate, write results), `evaluate`."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from app.commands.common import (CLIP_BENCHMARK_HELP, check_request, clip_benchmark_folder, flow_context, parse_presets, rounded,
                                 start_prefect_server, uses_workspace, write_clip_benchmark, written)
from app.options import SCORE_MEMORY_HELP, add_run_flags, dataset_name, positive_int, request_from_args


def cmd_demo(args) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / "glocal-demo"
    if not args.in_process:
        start_prefect_server()
        from flows.demo import demo_pipeline

        with flow_context(args):
            result = demo_pipeline(images=args.images, model=args.model, attention_model=args.attention_model,
                                   methods=args.methods.split(","), limit=args.limit, n_crops=args.n_crops, workdir=workdir,
                                   score_memory=args.score_memory)
        print(result["table"])  # on stdout, as `glocal evaluate` prints it
        return 0 if result["accuracy"] else 1
    from glocal.run.demo import run_demo

    result = run_demo(
        images=args.images,
        model=args.model,
        attention_model=args.attention_model,
        methods=args.methods.split(","),
        limit=args.limit,
        n_crops=args.n_crops,
        workdir=workdir,
    )
    return 0 if result["scored"] else 1


CLASSNAMES_HELP = ("class names in label order: a JSON list, one per line (.txt), or CLIP_benchmark's JSON keyed by dataset name "
                   "(default: from the folder: class sub-folders, labels.csv, or a CLIP_benchmark folder's classnames.txt)")


def cmd_ingest(args) -> int:
    from glocal.text.files import load_classnames, load_templates
    from tasks.ingest import ingest_folder

    classnames = load_classnames(args.classnames, args.dataset) if args.classnames else None
    class_ids = load_classnames(args.class_ids) if args.class_ids else None
    templates = load_templates(args.templates, args.dataset) if args.templates else None
    report = ingest_folder(args.db, args.dataset, args.folder, shard_size=args.shard_size, classnames=classnames, limit=args.limit,
                           layout=args.layout, class_ids=class_ids, templates=templates)
    print(f"ingested {report['images']} images into {report['shards']} shard(s) as dataset {args.dataset!r}")
    for image_id, reason in report["bad"]:
        print(f"bad image {image_id}: {reason}")
    return 0


SEEDS_HELP = ("run once per seed (e.g. 1,2,3: every method that draws at random gets that seed) and print each method's "
              "top-1 mean and std over the seeds; methods with no random draw say so")


def seeded_requests(request, seeds_text: str | None) -> list:
    """The request itself, or one per --seeds value (checked before any compute)."""
    if not seeds_text:
        return [request]
    from glocal.results.seeds import parse_seeds, seed_overrides
    from glocal.run.plan import build_runs

    seeds = parse_seeds(seeds_text)
    configs = {run.spec.name: run.config for run in build_runs(list(request.methods), request.presets, request.n_crops, request.overrides)}
    return [request.replace(overrides=seed_overrides(list(request.methods), configs, seed, request.overrides)) for seed in seeds]


def seed_rows(request, seeds_text: str, results: list[dict]) -> list[tuple]:
    """``glocal.results.seeds.summarise`` over the runs of --seeds (``request``: the unseeded one)."""
    from glocal.results.seeds import has_random_draw, parse_seeds, summarise
    from glocal.run.plan import build_runs

    runs = build_runs(list(request.methods), request.presets, request.n_crops, request.overrides)
    random = {run.spec.name: has_random_draw(run.config) for run in runs}
    return summarise(parse_seeds(seeds_text), [{m: 100 * top1 for m, top1 in result["accuracy"].items()} for result in results], random)


def cmd_evaluate(args) -> int:
    request = request_from_args(args, dataset=args.dataset, methods=args.methods.split(","), presets=parse_presets(args.preset))
    requests = seeded_requests(request, args.seeds)
    check_request(args.db, request)
    start_prefect_server()
    from flows.evaluate import evaluate

    with flow_context(args):
        results = [evaluate(request=r, db=args.db) for r in requests]
    for result in results:
        print(result["table"])  # the results on stdout (`> out.txt` keeps them); Prefect's log on stderr
    if args.seeds:
        from glocal.results.seeds import SEED_COLUMNS
        from glocal.results.tables import render

        print(f"over seeds {args.seeds}\n" + render(SEED_COLUMNS, seed_rows(request, args.seeds, results), "table"), end="")
    return 0


def cmd_eval(args) -> int:
    """Ingest (when the workspace does not hold this folder yet), evaluate, write the results."""
    from glocal import __version__
    from glocal.results.tables import format_for
    from storage import Catalog

    folder = str(Path(args.folder).resolve())
    if not Path(folder).exists():
        raise FileNotFoundError(f"{args.folder}: no such folder or shard file")
    from glocal.data.names import name_from

    name = args.name or name_from(Path(folder).name)  # a folder's own name, made a valid one
    methods = args.methods.split(",")
    presets = parse_presets(args.preset)
    fmt = format_for(args.format, args.output)
    if fmt == "clip_benchmark":
        clip_benchmark_folder(args)
    elif args.output and fmt == "table":
        raise ValueError(f"--output {args.output}: name a .json or .csv file (or pass --format json / csv)")
    catalog = Catalog(args.db)
    # everything but the dataset is checked before the images are read
    request = request_from_args(args, dataset=name, methods=methods, presets=presets)
    requests = seeded_requests(request, args.seeds)
    check_request(args.db, request, dataset=False)
    start_prefect_server()
    from glocal.config import content_key
    from glocal.data.images import listing_signature

    # the folder as it is now and how it is read: the stored ingest is reused only if both are unchanged
    listing = content_key(listing_signature(folder), args.limit, args.layout, args.shard_size,
                          listing_signature(args.classnames) if args.classnames else None)
    try:
        stored = catalog.dataset(name)
        ingested = stored["root"] == folder and stored["listing"] == listing
    except ValueError:
        ingested = False
    if args.reingest or not ingested:
        from glocal.text.files import load_classnames
        from tasks.ingest import ingest_folder

        report = ingest_folder(args.db, name, folder, shard_size=args.shard_size, limit=args.limit, layout=args.layout,
                               classnames=load_classnames(args.classnames, name) if args.classnames else None)
        print(f"ingested {report['images']} images ({len(report['bad'])} unreadable, skipped) as dataset {name!r}", file=sys.stderr)
        catalog.record_listing(name, listing)
    from flows.evaluate import evaluate

    with flow_context(args):
        seeded = [evaluate(request=r, db=args.db) for r in requests]
    result = seeded[0]
    over_seeds = seed_rows(request, args.seeds, seeded) if args.seeds else None
    # top-1 in per cent wherever glocal prints or writes it, and named so
    costs = catalog.costs()
    results = [{"method": row["method"], "images": row["images"], "top1_pct": round(100 * row["top1"], 4),
                "top1_std_pct": None if row["top1_std"] is None else round(100 * row["top1_std"], 4), "draws": row["draws"],
                "top5_pct": rounded(row["top5_pct"], 4), "mean_per_class_recall_pct": rounded(row["mean_per_class_recall_pct"], 4),
                "gflop_per_image": rounded(costs.get((result["run_id"], row["method"]), {}).get("gflop_per_image"), 4)}
               for row in catalog.run_results(result["run_id"])]
    summary = {"glocal": __version__, "run_id": result["run_id"], "dataset": name, "folder": folder, "model": args.model,
               "attention_model": args.attention_model, "text_dataset": args.text_dataset, "text_files": text_files_read(args, catalog, name),
               "db": str(catalog.path), "results": results}
    if over_seeds is not None:  # --seeds: "results" is the first seed's run; each method over all of them here
        from glocal.results.seeds import SEED_COLUMNS

        summary["seeds"] = {"run_ids": [r["run_id"] for r in seeded], "results": [dict(zip(SEED_COLUMNS, row)) for row in over_seeds]}
    if fmt == "clip_benchmark":
        write_clip_benchmark(catalog.result_rows([result["run_id"]]), args.output)
        return 0
    if fmt == "json":  # one object (schema in the README), to the file or to stdout
        text = json.dumps(summary, indent=1) + "\n"
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            written(args.output)
        else:
            sys.stdout.write(text)
        return 0
    from glocal.results.tables import emit

    columns = ["run_id", "dataset", "model", "method", "images", "top1_pct", "top1_std_pct", "draws", "top5_pct", "mean_per_class_recall_pct",
               "gflop_per_image"]
    rows = [(result["run_id"], name, args.model, r["method"], r["images"], r["top1_pct"], r["top1_std_pct"], r["draws"], r["top5_pct"],
             r["mean_per_class_recall_pct"], r["gflop_per_image"]) for r in results]
    written(emit(columns, rows, fmt, args.output))
    if over_seeds is not None:
        from glocal.results.seeds import SEED_COLUMNS
        from glocal.results.tables import render

        if args.output:  # beside the file: <name>.seeds.<ext>
            out = Path(args.output)
            written(emit(SEED_COLUMNS, over_seeds, fmt, str(out.with_name(f"{out.stem}.seeds{out.suffix}"))))
        else:
            print(f"over seeds {args.seeds}\n" + render(SEED_COLUMNS, over_seeds, "table"), end="")
    return 0


def text_files_read(args, catalog, dataset: str) -> dict[str, str]:
    """The text files a run read, by role: the text dataset's (shipped with glocal, or from
    $GLOCAL_TEXT_DATA), the run's templates or descriptions file; "dataset" for templates the
    dataset folder carried."""
    from glocal.text.dataset_text import text_paths

    files = {role: str(path) for role, path in text_paths(args.text_dataset).items() if path.exists()} if args.text_dataset else {}
    if args.templates:
        files["templates"] = str(Path(args.templates).resolve())
    elif catalog.dataset(dataset).get("templates"):
        files["templates"] = "dataset"
    if args.descriptions:
        files["cupl"] = str(Path(args.descriptions).resolve())
    return files


def add(sub) -> None:
    """This group's subcommands."""
    demo = sub.add_parser(
        "demo",
        help="the whole pipeline on sample images, offline (tiny random models unless --model)",
        description=(
            "Ingest, embed text, compute attention, crop-and-encode and score every method through the "
            "Prefect flow into a DuckDB workspace, on a folder of images (default: ../shared/data/images/"
            "imagenet-sample when present, else generated images). Without --model it builds tiny "
            "random-weight CLIP and DINO models, so accuracy is at chance: the point is that every "
            "stage runs. With --model <hub id or dir> on a connected machine it uses real weights."
        ),
    )
    demo.add_argument("--images", help="image folder (class sub-folders or labels.csv)")
    demo.add_argument("--model", help="CLIP hub id or local dir (default: a tiny random CLIP)")
    demo.add_argument("--attention-model", help="DINO/DINOv2 hub id or dir (default: shared DINOv2 if present, else tiny random)")
    demo.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names")
    demo.add_argument("--limit", type=positive_int, default=40, help="number of images (default 40)")
    demo.add_argument("--n-crops", type=positive_int, default=None, help="override N for ABS/WCA/LGCA (smaller is faster)")
    demo.add_argument("--workdir", help="where the workspace and tiny models live (default: <tmp>/glocal-demo)")
    demo.add_argument("--score-memory", help=SCORE_MEMORY_HELP)
    demo.add_argument("--in-process", action="store_true", help="score in this process without Prefect/DuckDB (a quick look)")
    demo.set_defaults(fn=cmd_demo)

    ingest = sub.add_parser("ingest", help="image folder or webdataset shards -> our shards + manifest",
                            description="Ingest an image folder (class sub-folders or labels.csv), or existing webdataset tar shards "
                                        "(a .tar, a folder of them, a glob or a {000..009} pattern; labels in cls or json 'label'; "
                                        "needs --classnames), or a CLIP_benchmark folder (wds_<name>: test/*.tar with classnames.txt and "
                                        "zeroshot_classification_templates.txt beside it, both taken from the folder), as webdataset shards; "
                                        "unreadable images are recorded in bad_images and skipped.")
    ingest.add_argument("dataset", type=dataset_name, help="name to store the dataset under")
    ingest.add_argument("folder", help="image folder, webdataset shard(s), or a CLIP_benchmark wds_<name> folder")
    ingest.add_argument("--classnames", help=CLASSNAMES_HELP)
    ingest.add_argument("--templates", help="prompt templates stored with the dataset (CLIP-E uses them when a run names none): "
                                            "a JSON list, one per line (.txt), or JSON keyed by dataset name; '{}' or '{c}' for the class")
    ingest.add_argument("--class-ids", help="JSON list: the folder name of each class, in class order (class folders named by id; "
                                           "ImageNet's wnid folders need none)")
    ingest.add_argument("--shard-size", type=positive_int, default=256, help="images per webdataset shard (the unit of work and of resuming)")
    ingest.add_argument("--limit", type=positive_int, default=None, help="ingest only the first N images (with --layout: N evenly spaced ones)")
    ingest.add_argument("--layout", help="read a benchmark dataset's own layout: imagenet, imagenet_v2, imagenet_sketch, imagenet_r, "
                                         "imagenet_a, cub, pets, dtd, food101, places365 (test split; class names from the text data)")
    uses_workspace(ingest, cmd_ingest)

    one = sub.add_parser("eval", help="one step: ingest a folder if needed, evaluate, write the results (JSON / CSV)",
                         description="Ingest FOLDER (an image folder, webdataset shards, or a benchmark layout with --layout) unless "
                                     "the workspace already holds it, evaluate the methods, and print the accuracy per method or "
                                     "write it to --output (.json: one object, schema in the README; .csv: a row per method).")
    one.add_argument("folder", help="image folder (class sub-folders or labels.csv), webdataset shard(s), a CLIP_benchmark "
                                    "wds_<name> folder, or a dataset's own layout")
    one.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names (`glocal methods`)")
    one.add_argument("--preset", action="append", help="METHOD=PRESET, e.g. abs=abs-code (repeatable)")
    one.add_argument("--output", help="results file: .json or .csv (default: a table on the screen); a folder for --format clip_benchmark")
    one.add_argument("--format", choices=("table", "csv", "json", "clip_benchmark"), help="table, csv or json (one object, schema in the README); "
                                                                         f"{CLIP_BENCHMARK_HELP}; "
                                                                      "default: from --output's extension, else table")
    one.add_argument("--name", type=dataset_name, help="the dataset's name in the workspace (default: the folder's name)")
    one.add_argument("--layout", help="read a benchmark dataset's own layout (as `glocal ingest --layout`)")
    one.add_argument("--classnames", help=CLASSNAMES_HELP)
    one.add_argument("--limit", type=positive_int, default=None, help="ingest only the first N images (with --layout: N evenly spaced)")
    one.add_argument("--shard-size", type=positive_int, default=256, help="images per webdataset shard")
    one.add_argument("--reingest", action="store_true", help="read the folder again even if the workspace holds it")
    one.add_argument("--seeds", help=SEEDS_HELP)
    add_run_flags(one)
    uses_workspace(one, cmd_eval)

    ev = sub.add_parser("evaluate", help="run the evaluate flow (embed text, attention, encode, score)", description="Evaluate methods on an ingested dataset. Finished (stage, key, shard) units are skipped, so a rerun resumes.")
    ev.add_argument("dataset", type=dataset_name, help="an ingested dataset's name (`glocal ingest`)")
    ev.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names (`glocal methods`)")
    ev.add_argument("--preset", action="append", help="METHOD=PRESET, e.g. abs=abs-code (repeatable)")
    ev.add_argument("--seeds", help=SEEDS_HELP)
    add_run_flags(ev)
    uses_workspace(ev, cmd_evaluate)
