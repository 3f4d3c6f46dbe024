"""glocal: training-free zero-shot image classification with CLIP-family models (CLIP, CLIP-E,
CLIP-D, Waffle, CuPL, WCA, ABS, LGCA), as restartable dataset-wide runs in a DuckDB workspace.

Offline: `glocal models tiny --out models`, then
`glocal eval FOLDER --model models/tiny-clip --output results.json` (tiny random weights: chance
accuracy), or `glocal demo`. Real weights: --model openai/clip-vit-base-patch16 (a hub id or folder)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path


from app.options import SCORE_MEMORY_HELP, add_run_flags, dataset_name, non_negative_int, positive_float, positive_int, request_from_args  # noqa: E402,F401


class HelpWithDefaults(argparse.HelpFormatter):
    """Help lines end with their default where there is one worth saying (not None / off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class GlocalParser(argparse.ArgumentParser):
    """Every glocal (sub)command's parser: defaults in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


def uses_workspace(parser: argparse.ArgumentParser, fn) -> None:
    """A command that reads or writes a workspace: its --db flag, and the function it runs."""
    parser.add_argument("--db", default=os.environ.get("GLOCAL_DB", "glocal.duckdb"),
                        help="workspace DuckDB file (default: $GLOCAL_DB or ./glocal.duckdb)")
    parser.set_defaults(fn=fn)


def require_workspace(db: str) -> None:
    """Commands that use a workspace refuse a path where there is none (a typo in --db would
    otherwise start an empty workspace); `glocal ingest` and `glocal demo` create them."""
    if not Path(db).exists():
        raise FileNotFoundError(f"{db}: no glocal workspace here; `glocal ingest` creates one (check --db or GLOCAL_DB)")


def _offline_defaults() -> None:
    # Nothing phones home unless the user says otherwise.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a fresh PREFECT_HOME migrates its database on first start: Prefect's 20 s default is too short
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from glocal.progress import quiet_third_party_bars

    quiet_third_party_bars()


def cmd_methods(args) -> int:
    import shutil
    import textwrap

    from glocal.methods import get_method, method_names

    width = max(shutil.get_terminal_size((100, 24)).columns, 80)
    for name in method_names():
        spec = get_method(name)
        head = f"{name:8s} image={','.join(sorted(spec.image_needs)):14s} text={','.join(sorted(spec.text_needs)):22s} "
        print(textwrap.fill(spec.summary, width, initial_indent=head, subsequent_indent=" " * len(head)))
    return 0


def cmd_models_tiny(args) -> int:
    from glocal.tiny import build_tiny_clip, build_tiny_dino

    out = Path(args.out)
    clip, dino = build_tiny_clip(out / "tiny-clip"), build_tiny_dino(out / "tiny-dino")
    print(f"tiny random-weight models (accuracy at chance: for trying the pipeline offline):\n  --model {clip}\n"
          f"  --attention-model {dino}")
    return 0


def cmd_miniature(args) -> int:
    from glocal.miniature import build_data_root, miniature_datasets
    from glocal.paths import SHARED_DATA

    if not (SHARED_DATA / "classnames").is_dir():
        raise FileNotFoundError(f"{SHARED_DATA}: the text data (class lists) the miniatures are labelled with is not here; "
                                "set GLOCAL_TEXT_DATA to a folder laid out like ../shared/data")
    datasets = args.datasets.split(",") if args.datasets else None
    unknown = sorted(set(datasets or []) - set(miniature_datasets()))
    if unknown:
        raise ValueError(f"no miniature for {unknown}; datasets: {', '.join(miniature_datasets())}")
    for dataset, folder in build_data_root(Path(args.out), SHARED_DATA, datasets).items():
        print(f"{dataset:16s} {folder}")
    return 0


def preset_rows() -> list[dict]:
    """Every preset as ``glocal presets`` lists it: its method, content hash, which form it is
    (the method's default, the official code's form that the ABS tables measured) and the fields
    it sets away from its config class's defaults."""
    from glocal.config import DEFAULT_PRESET, OFFICIAL_PRESET, PRESETS, config_hash
    from glocal.methods import get_method, method_names

    method_of = {get_method(m).config_cls: m for m in method_names()}
    rows = []
    for name, config in PRESETS.items():
        method = method_of.get(type(config), "?")
        roles = [label for label, table in (("default", DEFAULT_PRESET), ("official (ABS tables)", OFFICIAL_PRESET)) if table.get(method) == name]
        defaults = type(config)()
        changed = [f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(defaults, f.name)]
        rows.append({"name": name, "method": method, "hash": config_hash(config), "form": ", ".join(roles), "settings": " ".join(changed)})
    return rows


def cmd_presets(args) -> int:
    rows = preset_rows()
    width = max(len(r["name"]) for r in rows)
    print(f"{'preset':{width}s}  {'method':7s} {'hash':16s}  {'form':28s} settings (beside the config's defaults)")
    for r in rows:
        print(f"{r['name']:{width}s}  {r['method']:7s} {r['hash']:16s}  {r['form']:28s} {r['settings'] or '(defaults)'}")
    return 0


def cmd_demo(args) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / "glocal-demo"
    if not args.in_process:
        from flows.demo import demo_pipeline

        result = demo_pipeline(images=args.images, model=args.model, attention_model=args.attention_model,
                               methods=args.methods.split(","), limit=args.limit, n_crops=args.n_crops, workdir=workdir,
                               score_memory=args.score_memory)
        return 0 if result["accuracy"] else 1
    from glocal.demo import run_demo

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


def cmd_ingest(args) -> int:
    from glocal.text import load_classnames
    from tasks.ingest import ingest_folder

    classnames = load_classnames(args.classnames) if args.classnames else None
    class_ids = load_classnames(args.class_ids) if args.class_ids else None
    report = ingest_folder(args.db, args.dataset, args.folder, shard_size=args.shard_size, classnames=classnames, limit=args.limit,
                           layout=args.layout, class_ids=class_ids)
    print(f"ingested {report['images']} images into {report['shards']} shard(s) as dataset {args.dataset!r}")
    for image_id, reason in report["bad"]:
        print(f"bad image {image_id}: {reason}")
    return 0


def parse_presets(items: list[str] | None) -> dict[str, str] | None:
    """['abs=abs-code', ...] -> {'abs': 'abs-code'}."""
    bad = [item for item in items or [] if "=" not in item]
    if bad:
        raise ValueError(f"--preset takes METHOD=PRESET (e.g. abs=abs-code; `glocal presets` lists them), not {bad[0]!r}")
    return dict(item.split("=", 1) for item in items) if items else None


def check_request(db: str, request, models: bool = True, dataset: bool = True) -> None:
    """What a flow would refuse, refused here, before Prefect's server starts (seconds) and once:
    the workspace, the run's plan (methods with their presets and overrides, crop kinds, text
    dataset, cluster options, scoring budget; ``glocal.run_plan``), the dataset (unless
    ``dataset`` is False: not ingested yet) and the models."""
    from glocal.identity import check_models
    from glocal.run_plan import plan_run
    from storage import Catalog

    require_workspace(db)
    plan_run(request)
    if dataset:
        Catalog(db).dataset(request.dataset)
    if models:
        check_models(request.model, request.attention_model)


def cmd_evaluate(args) -> int:
    request = request_from_args(args, dataset=args.dataset, methods=args.methods.split(","), presets=parse_presets(args.preset))
    check_request(args.db, request)
    from flows.evaluate import evaluate

    evaluate(request=request, db=args.db)
    return 0


def cmd_eval(args) -> int:
    """Ingest (when the workspace does not hold this folder yet), evaluate, write the results."""
    from glocal import __version__
    from glocal.tables import format_for
    from storage import Catalog

    folder = str(Path(args.folder).resolve())
    if not Path(folder).exists():
        raise FileNotFoundError(f"{args.folder}: no such folder or shard file")
    from glocal.names import name_from

    name = args.name or name_from(Path(folder).name)  # a folder's own name, made a valid one
    methods = args.methods.split(",")
    presets = parse_presets(args.preset)
    if args.output and format_for(None, args.output) == "table":
        raise ValueError(f"--output {args.output}: name a .json or .csv file")
    catalog = Catalog(args.db)
    # everything but the dataset is checked before the images are read
    request = request_from_args(args, dataset=name, methods=methods, presets=presets)
    check_request(args.db, request, dataset=False)
    from glocal.config import content_key
    from glocal.data import listing_signature

    # the folder as it is now and how it is read: the stored ingest is reused only if both are unchanged
    listing = content_key(listing_signature(folder), args.limit, args.layout, args.shard_size,
                          listing_signature(args.classnames) if args.classnames else None)
    try:
        stored = catalog.dataset(name)
        ingested = stored["root"] == folder and stored["listing"] == listing
    except ValueError:
        ingested = False
    if args.reingest or not ingested:
        from glocal.text import load_classnames
        from tasks.ingest import ingest_folder

        report = ingest_folder(args.db, name, folder, shard_size=args.shard_size, limit=args.limit, layout=args.layout,
                               classnames=load_classnames(args.classnames) if args.classnames else None)
        print(f"ingested {report['images']} images ({len(report['bad'])} unreadable, skipped) as dataset {name!r}", file=sys.stderr)
        catalog.record_listing(name, listing)
    from flows.evaluate import evaluate

    result = evaluate(request=request, db=args.db)
    results = [{**row, "top1": round(100 * row["top1"], 4), "top1_std": None if row["top1_std"] is None else round(100 * row["top1_std"], 4)}
               for row in catalog.run_results(result["run_id"])]
    summary = {"glocal": __version__, "run_id": result["run_id"], "dataset": name, "folder": folder, "model": args.model,
               "attention_model": args.attention_model, "text_dataset": args.text_dataset, "db": str(catalog.path), "results": results}
    if args.output and format_for(None, args.output) == "json":
        Path(args.output).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    from glocal.tables import emit

    columns = ["run_id", "dataset", "model", "method", "images", "top1", "top1_std", "draws"]
    rows = [(result["run_id"], name, args.model, r["method"], r["images"], r["top1"], r["top1_std"], r["draws"]) for r in results]
    _written(emit(columns, rows, None, args.output))
    return 0


def cmd_describe(args) -> int:
    require_workspace(args.db)
    from storage import Catalog

    Catalog(args.db).dataset(args.dataset)  # not ingested: said before Prefect's server starts
    for set_id in args.replace or []:
        Catalog(args.db).description_set(set_id)
    from flows.describe import describe

    if not args.import_file and not (args.llm_model or os.environ.get("GLOCAL_LLM_MODEL")):
        raise ValueError("give --llm-model (or set GLOCAL_LLM_MODEL) to generate, or --import FILE to import")
    options = {k: v for k, v in (("timeout_s", args.timeout), ("max_attempts", args.max_attempts)) if v is not None}
    result = describe(dataset=args.dataset, db=args.db, llm_model=args.llm_model, import_file=args.import_file,
                      prompt_set=args.prompt_set, sentences_per_prompt=args.sentences_per_prompt,
                      max_sentences=args.max_sentences, new_version=args.new_version, concurrency=args.concurrency,
                      lenient=args.lenient, rescore=not args.no_rescore, replace=args.replace, llm_options=options)
    return 0 if result["report"]["status"] == "complete" else 3


def cmd_sql(args) -> int:
    from glocal.tables import emit
    from storage import Catalog

    import duckdb

    try:
        columns, rows, notes = Catalog.read_only(args.db).query(args.query, timeout_s=args.timeout, memory_limit=args.memory_limit,
                                                                 max_rows=args.max_rows)
    except duckdb.Error as exc:
        raise ValueError(f"SQL error (the database is opened read-only): {exc}") from None
    for note in notes:
        print(f"glocal: note: {note}", file=sys.stderr)
    _written(emit(columns, rows, args.format, args.output))
    return 0


def cmd_runs(args) -> int:
    from glocal.tables import emit
    from storage import Catalog

    rows = [(run_id, dataset, backbone, method, images, round(100 * top1, 2))
            for run_id, dataset, backbone, method, images, top1 in Catalog.read_only(args.db).accuracy()]
    _written(emit(["run_id", "dataset", "backbone", "method", "images", "top1"], rows, args.format, args.output))
    return 0


def _written(path: str | None) -> None:
    if path:
        print(f"wrote {path}", file=sys.stderr)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    from glocal.tables import FORMATS

    parser.add_argument("--format", choices=FORMATS, help="table (aligned, for people), csv or json; default: from --output's "
                                                          "extension, else table")
    parser.add_argument("--output", help="write to this file instead of the screen (.csv / .json pick the format)")


def cmd_compare(args) -> int:
    from glocal.stats import compare_paired
    from storage import Catalog

    catalog = Catalog.read_only(args.db)
    (run_a, method_a, data_a), (run_b, method_b, data_b) = catalog.resolve_scored(args.a), catalog.resolve_scored(args.b)
    if data_a != data_b:
        raise ValueError(f"{args.a} scored dataset {data_a!r} but {args.b} scored {data_b!r}: a paired comparison needs the same images")
    ids, correct_a, correct_b = catalog.paired_correct((run_a, method_a), (run_b, method_b))
    if not ids:
        raise ValueError(f"{run_a}:{method_a} and {run_b}:{method_b} share no scored image")
    c = compare_paired(correct_a, correct_b, resamples=args.resamples, seed=args.seed)
    if args.format or args.output:
        from glocal.tables import emit

        columns = ["a", "b", "dataset", "images", "top1_a", "top1_b", "difference", "interval_low", "interval_high", "only_a", "only_b", "p_value"]
        row = (f"{run_a}:{method_a}", f"{run_b}:{method_b}", data_a, c.images, 100 * c.accuracy_a, 100 * c.accuracy_b, 100 * c.difference,
               100 * c.interval[0], 100 * c.interval[1], c.only_a, c.only_b, c.p_value)
        _written(emit(columns, [row], args.format, args.output))
        return 0
    print(f"A = {run_a}:{method_a}  B = {run_b}:{method_b}  on {c.images} paired images ({data_a})")
    print(f"accuracy A {100 * c.accuracy_a:.2f}%  B {100 * c.accuracy_b:.2f}%")
    print(f"A - B = {100 * c.difference:+.2f} points, bootstrap 95% interval [{100 * c.interval[0]:+.2f}, {100 * c.interval[1]:+.2f}]")
    print(f"McNemar: A right / B wrong {c.only_a}, B right / A wrong {c.only_b}, exact p = {c.p_value:.4g}")
    return 0


def cmd_report(args) -> int:
    from app.report import build_report
    from storage import Catalog

    runs = list(args.runs)
    for sweep_id in args.sweep or []:
        runs += [r for r in Catalog.read_only(args.db).sweep_runs(sweep_id) if r not in runs]
    for repro_id in args.reproduce or []:
        runs += [r for r in Catalog.read_only(args.db).reproduction_runs(repro_id) if r not in runs]
    if not runs:
        raise ValueError("name at least one run id (see `glocal runs`), --sweep ID or --reproduce ID")
    summary = build_report(args.db, runs, args.out, gallery=args.gallery)
    print(f"wrote {summary['path']} ({summary['methods']} methods, {summary['plots']} plots, {summary['sweeps']} sweeps, "
          f"{summary['gallery']} gallery images)")
    return 0


def split_values(text: str) -> list[str]:
    """'1,2,3' -> ['1', '2', '3']; commas inside [...] stay (list values such as step weights)."""
    import re

    return [v.strip() for v in re.split(r",(?![^\[]*\])", text) if v.strip()]


def cmd_sweep(args) -> int:
    from glocal.config import parse_field_value
    from glocal.methods import get_method, methods_with_parameters

    param, sep, raw = args.param.partition("=")
    if not sep or not raw:
        raise ValueError(f"--param takes NAME=V1,V2,... (e.g. n_crops=10,20,30 or preset=abs-paper,abs-frs-only), not {args.param!r}")
    spec = get_method(args.method)
    if spec.config_cls is None:
        raise ValueError(f"method {args.method!r} has no parameters to sweep; methods with parameters: {', '.join(methods_with_parameters())}")
    texts = split_values(raw)
    values = texts if param == "preset" else [parse_field_value(spec.config_cls, param, t) for t in texts]
    baselines = args.baselines.split(",") if args.baselines else []
    request = request_from_args(args, dataset=args.dataset, methods=(args.method,))
    check_request(args.db, request.replace(methods=(args.method, *baselines), presets={args.method: args.preset} if args.preset else None))
    from flows.sweep import sweep

    result = sweep(method=args.method, param=param, values=values, request=request, db=args.db, preset=args.preset,
                   baselines=baselines or None)
    if args.format or args.output:
        from glocal.tables import emit

        columns = ["sweep_id", "role", "method", args.param.partition("=")[0], "run_id", "encoded_shards", "top1"]
        rows = [(result["sweep_id"], p["role"], p["method"], p["value"], p["run_id"], p["encoded_shards"],
                 None if p["top1"] is None else round(100 * p["top1"], 4)) for p in result["points"]]
        _written(emit(columns, rows, args.format, args.output))
    else:
        print(result["table"])
    if args.report:
        from app.report import build_report

        runs = list(dict.fromkeys(p["run_id"] for p in result["points"]))
        summary = build_report(args.db, runs, args.report, gallery=0)
        print(f"wrote {summary['path']}")
    return 0


def parse_backbones(text: str | None) -> dict[str, str | None] | None:
    """'B/16=/models/clip-b16,B/32' -> {'B/16': '/models/clip-b16', 'B/32': None} (None: the paper's checkpoint)."""
    if not text:
        return None
    out = {}
    for item in split_values(text):
        label, sep, model = item.partition("=")
        out[label.strip()] = model.strip() if sep and model.strip() else None
    return out


def cmd_reproduce(args) -> int:
    from flows.reproduce import plan_reproduction, reproduce

    # the table, backbones, methods and dataset layouts are checked before Prefect's server starts
    plan_reproduction(args.table, args.data_root, parse_backbones(args.backbones),
                      args.methods.split(",") if args.methods else None, args.attention_model)

    result = reproduce(table=args.table, data_root=args.data_root, db=args.db, backbones=parse_backbones(args.backbones),
                       methods=args.methods.split(",") if args.methods else None, attention_model=args.attention_model,
                       limit=args.limit, n_crops=args.n_crops, batch_size=args.batch_size, reingest=args.reingest,
                       score_memory=args.score_memory, forms=args.forms)
    if args.format or args.output:
        from glocal.tables import emit

        columns = ["repro_id", "dataset", "backbone", "method", "images", "measured", "measured_std", "published", "form", "run_id"]
        rows = [(result["repro_id"], c["dataset"], c["backbone"], c["method"], c["images"], c["measured"], c["measured_std"], c["published"],
                 c["form"], c["run_id"]) for c in result["cells"]]
        _written(emit(columns, rows, args.format, args.output))
    else:
        print(result["table"])
    if args.report:
        from app.report import build_report
        from storage import Catalog

        summary = build_report(args.db, Catalog.read_only(args.db).reproduction_runs(result["repro_id"]), args.report, gallery=0)
        print(f"wrote {summary['path']}")
    return 0


def _layouts() -> dict:
    from glocal.datasets import LAYOUTS

    return LAYOUTS



def build_parser() -> argparse.ArgumentParser:
    from glocal import __version__

    parser = GlocalParser(prog="glocal", description=__doc__,
                                     epilog="Exit codes: 0 done, 2 bad input, 3 descriptions incomplete, 4 workspace busy, "
                                            "5 files or models that cannot be read, 1 anything else, 130 interrupted.")
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    parser.add_argument("--version", action="version", version=f"glocal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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
                                        "needs --classnames), as webdataset shards; unreadable images are recorded in bad_images and skipped.")
    ingest.add_argument("dataset", type=dataset_name, help="name to store the dataset under")
    ingest.add_argument("folder", help="image folder, or webdataset shard(s)")
    ingest.add_argument("--classnames", help="JSON list of class names (default: from the folder layout)")
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
    one.add_argument("folder", help="image folder (class sub-folders or labels.csv), webdataset shard(s), or a dataset's own layout")
    one.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names (`glocal methods`)")
    one.add_argument("--preset", action="append", help="METHOD=PRESET, e.g. abs=abs-code (repeatable)")
    one.add_argument("--output", help="results file: .json or .csv (default: a table on the screen)")
    one.add_argument("--name", type=dataset_name, help="the dataset's name in the workspace (default: the folder's name)")
    one.add_argument("--layout", help="read a benchmark dataset's own layout (as `glocal ingest --layout`)")
    one.add_argument("--classnames", help="JSON list of class names (default: from the folder layout)")
    one.add_argument("--limit", type=positive_int, default=None, help="ingest only the first N images (with --layout: N evenly spaced)")
    one.add_argument("--shard-size", type=positive_int, default=256, help="images per webdataset shard")
    one.add_argument("--reingest", action="store_true", help="read the folder again even if the workspace holds it")
    add_run_flags(one)
    uses_workspace(one, cmd_eval)

    ev = sub.add_parser("evaluate", help="run the evaluate flow (embed text, attention, encode, score)", description="Evaluate methods on an ingested dataset. Finished (stage, key, shard) units are skipped, so a rerun resumes.")
    ev.add_argument("dataset", type=dataset_name, help="an ingested dataset's name (`glocal ingest`)")
    ev.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names (`glocal methods`)")
    ev.add_argument("--preset", action="append", help="METHOD=PRESET, e.g. abs=abs-code (repeatable)")
    add_run_flags(ev)
    uses_workspace(ev, cmd_evaluate)

    ds = sub.add_parser(
        "describe", help="generate class descriptions with an LLM (or import a JSON file), then re-score runs",
        description=(
            "Generate CuPL-style descriptions through any OpenAI-compatible server (GLOCAL_LLM_BASE_URL, "
            "GLOCAL_LLM_API_KEY and GLOCAL_LLM_MODEL from the environment; the key is never stored), or import a "
            "{class: [sentences]} JSON file, as a versioned description set in the catalog. Then every stored run "
            "that used the previous set is re-embedded and re-scored (no image re-encode) and old vs new accuracy "
            "is printed. A rerun continues an unfinished set. Exit code 3: some classes failed (listed)."))
    ds.add_argument("dataset", type=dataset_name, help="an ingested dataset's name: its class list is described")
    ds.add_argument("--llm-model", help="model name on the server (default: $GLOCAL_LLM_MODEL)")
    ds.add_argument("--import", dest="import_file", help="import this CuPL-style JSON file instead of generating")
    ds.add_argument("--prompt-set", default="cupl-v1", help="prompt set name (glocal/prompt_sets/) or JSON path")
    ds.add_argument("--sentences-per-prompt", type=positive_int, default=3, help="sentences asked of the LLM per prompt of the set")
    ds.add_argument("--max-sentences", type=positive_int, default=15, help="M sentences kept per class")
    ds.add_argument("--concurrency", type=positive_int, default=4, help="requests in flight")
    ds.add_argument("--timeout", type=positive_float, default=None, help="seconds per request (default 60)")
    ds.add_argument("--max-attempts", type=positive_int, default=None, help="attempts per request on timeouts/429/5xx (default 4)")
    ds.add_argument("--new-version", action="store_true", help="start a new version instead of continuing the latest")
    ds.add_argument("--lenient", action="store_true", help="classes without sentences fall back to the class name")
    ds.add_argument("--no-rescore", action="store_true", help="only store the set")
    ds.add_argument("--replace", action="append", help="re-score the runs that used this set (repeatable; default: every "
                                                       "set a finished run on the dataset used)")
    uses_workspace(ds, cmd_describe)

    sql = sub.add_parser("sql", help="read-only SQL over the catalog and the Parquet views", description="Tables: runs, predictions, accuracy, images, bad_images, datasets, artifacts, description_sets, description_classes, descriptions, sweeps, sweep_points, reproductions, reproduction_cells, draw_accuracy; views: text_artifacts, attention_artifacts, encode_artifacts, score_artifacts (the registered files that check out).")
    sql.add_argument("query", help="one SELECT statement")
    sql.add_argument("--timeout", type=positive_float, default=30.0,
                     help="stop the query after this many seconds (it holds the workspace: a running evaluate waits for it)")
    sql.add_argument("--memory-limit", default="2GB", help="DuckDB's memory for the query (e.g. 512MB, 8GB)")
    sql.add_argument("--max-rows", type=positive_int, default=1_000_000, help="fetch at most this many rows (the rest are named, not shown)")
    add_output_options(sql)
    uses_workspace(sql, cmd_sql)

    runs = sub.add_parser("runs", help="list runs and their accuracy")
    add_output_options(runs)
    uses_workspace(runs, cmd_runs)

    cmp_ = sub.add_parser("compare", help="paired comparison of two scored methods on the same images",
                          description="A and B are RUN:METHOD or METHOD (its latest run). Prints both accuracies, the "
                                      "difference with a paired bootstrap 95% interval, and McNemar's exact test.")
    cmp_.add_argument("a", help="RUN:METHOD or METHOD (its latest run)")
    cmp_.add_argument("b", help="RUN:METHOD or METHOD, on the same images")
    cmp_.add_argument("--resamples", type=positive_int, default=10_000, help="paired bootstrap resamples")
    cmp_.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    add_output_options(cmp_)
    uses_workspace(cmp_, cmd_compare)

    rep = sub.add_parser("report", help="a self-contained HTML report of one or more runs",
                         description="Accuracy table, paired comparisons with CLIP, best/worst classes, and a gallery of images "
                                     "with the attention map, raw boxes and feature windows (images embedded; opens offline).")
    rep.add_argument("runs", nargs="*", help="run ids (see `glocal runs`)")
    rep.add_argument("--sweep", action="append", help="add every run of this sweep (and its plot); repeatable")
    rep.add_argument("--reproduce", action="append", help="add every run of this reproduction (and measured vs published); repeatable")
    rep.add_argument("--out", default="glocal-report.html", help="the HTML file to write")
    rep.add_argument("--gallery", type=non_negative_int, default=6, help="images in the gallery per run")
    uses_workspace(rep, cmd_report)

    sw = sub.add_parser(
        "sweep", help="score one method over values of one parameter (reusing stored features where only scoring changes)",
        description="Each value is an evaluate run. Values that change only scoring (ABS: use_raw, use_feature, soft_matching, "
                    "n_descriptions, match_temperature; WCA/LGCA weights) share one encode; values that change the crops "
                    "(n_crops, alpha, top_k, layer_id, ...) encode once each and share the attention maps and text embeddings. "
                    "--param preset=abs-paper,abs-frs-only,abs-ffs-only,abs-no-softm gives the paper's Table 4 ablation.")
    sw.add_argument("dataset", type=dataset_name, help="an ingested dataset's name (`glocal ingest`)")
    sw.add_argument("--method", default="abs", help="the method to sweep")
    sw.add_argument("--param", required=True, help="NAME=V1,V2,... a config field (see `glocal presets`) or preset")
    sw.add_argument("--preset", help="the preset the swept values apply to (default: the method's default)")
    sw.add_argument("--baselines", help="methods scored once for comparison, e.g. clip_d,cupl")
    sw.add_argument("--report", help="also write an HTML report of the sweep here")
    add_run_flags(sw)
    add_output_options(sw)
    uses_workspace(sw, cmd_sweep)

    rp = sub.add_parser(
        "reproduce", help="run one of the ABS paper's tables on the datasets you have, beside the published numbers",
        description="Table 1 (ImageNet and its OOD variants), 2 (ImageNet, CUB, Pets, DTD, Food101, Places365) or 8 (ALIGN, AltCLIP, "
                    "GroupViT on ImageNet): every method of the table that glocal has, with each "
                    "backbone the table names, on each dataset found under --data-root in its standard layout (absent ones are "
                    "skipped with a note). Prints measured vs published top-1 and the difference; stored in the reproductions and "
                    "reproduction_cells tables. Dataset folders looked for: " + "; ".join(
                        f"{d}: {'|'.join(spec.folders)}" for d, spec in _layouts().items()))
    rp.add_argument("--table", required=True, choices=["1", "2", "8"], help="the ABS paper's table")
    rp.add_argument("--data-root", required=True, help="folder holding the datasets in their own layouts")
    rp.add_argument("--backbones", help="column labels, each optionally =hub-id-or-dir, e.g. 'B/16,B/32=/models/clip-b32' "
                                        "(default: every backbone of the table with the paper's checkpoints)")
    rp.add_argument("--methods", help="comma-separated subset of the table's methods (default: all glocal has)")
    rp.add_argument("--limit", type=positive_int, help="an evenly spaced sample of N test images per dataset (a quick look)")
    rp.add_argument("--n-crops", type=positive_int, help="N for ABS/WCA/LGCA in every cell (a quick look; default: each form's own)")
    add_run_flags(rp, ("attention_model", "batch_size", "score_memory"))  # every cell's run request takes these as given
    rp.add_argument("--forms", choices=["official", "glocal"], default="official",
                    help="official (default): each method as the published numbers measured it (the official code's forms: "
                         "abs-code, wca-official, clip_d-official, waffle-official); glocal: each method's default preset. "
                         "Every cell prints the form it ran")
    rp.add_argument("--reingest", action="store_true", help="ingest again even if the catalog has the dataset from the same folder")
    rp.add_argument("--report", help="also write the HTML report with the comparison to this file")
    add_output_options(rp)
    uses_workspace(rp, cmd_reproduce)

    models = sub.add_parser("models", help="model helpers: `glocal models tiny --out DIR` writes tiny random CLIP and DINO models")
    model_sub = models.add_subparsers(dest="models_command", required=True, help="tiny: write tiny random models")
    tiny = model_sub.add_parser("tiny", help="write a tiny random CLIP and DINO (offline; for trying every command here)")
    tiny.add_argument("--out", default="models", help="folder for tiny-clip/ and tiny-dino/")
    tiny.set_defaults(fn=cmd_models_tiny)

    mini = sub.add_parser("miniature", help="write a miniature data root (each benchmark's layout, a few generated images) "
                                            "to try `glocal reproduce` offline")
    mini.add_argument("--out", default="miniature-data", help="the data root to write")
    mini.add_argument("--datasets", help="comma-separated subset (default: every benchmark dataset)")
    mini.set_defaults(fn=cmd_miniature)

    methods = sub.add_parser("methods", help="list the registered methods")
    methods.set_defaults(fn=cmd_methods)
    presets = sub.add_parser("presets", help="list the named presets and their content hashes")
    presets.set_defaults(fn=cmd_presets)
    return parser


# One error boundary: every failure is one line naming the problem, with an exit code per class.
EXIT_BAD_INPUT, EXIT_BUSY, EXIT_FILES, EXIT_UNEXPECTED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 4, 5, 1, 130, 143


def _by_sigterm(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt came from our SIGTERM handler through Prefect's (which
    raises its own TerminationSignal first, then re-sends the signal to the handler before it)."""
    while exc is not None:
        if isinstance(exc, Terminated) or type(exc).__name__ == "TerminationSignal":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def exit_code(exc: BaseException) -> int:
    from storage import WorkspaceBusy

    if isinstance(exc, WorkspaceBusy):
        return EXIT_BUSY
    if type(exc).__name__ == "IOException":  # DuckDB cannot read the workspace file (a folder, not a database, damaged)
        return EXIT_FILES
    if isinstance(exc, (ValueError, KeyError, FileNotFoundError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError):  # a model that cannot be loaded, permissions, a full disk
        return EXIT_FILES
    return EXIT_UNEXPECTED


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    if type(exc).__name__ == "IOException":
        return f"{text.removeprefix('IO Error: ')}: the workspace cannot be read; --db (or GLOCAL_DB) names its .duckdb file"
    return text if isinstance(exc, (ValueError, KeyError, OSError, RuntimeError)) else f"{type(exc).__name__}: {text}"


FLOW_COMMANDS = {"demo", "eval", "evaluate", "describe", "sweep", "reproduce"}  # the commands that start Prefect flows


class OneErrorLine(logging.Filter):
    """Under the CLI (without --debug), a failing flow's traceback and "Finished in state Failed"
    stay off the console, which gets the CLI's one ``glocal: error:`` line instead; the Prefect
    API (its UI) still records them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Finished in state Failed" in message or "Finished in state Crashed" in message:
            return False
        return not (record.levelno >= logging.ERROR and record.exc_info)


@contextlib.contextmanager
def one_error_line():
    import prefect  # noqa: F401 -- configures Prefect's console handler, which the filter goes on

    handlers = list(logging.root.handlers)
    quiet = OneErrorLine()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def flow_run_tags():
    """Flow runs started by this command carry its host and pid (flows.crashed), so a run whose
    process was killed is marked Crashed the next time."""
    from prefect import tags

    from flows.crashed import run_tags

    return tags(*run_tags())


def main(argv: list[str] | None = None) -> int:
    _offline_defaults()
    args = build_parser().parse_args(argv)
    previous = os.environ.get("GLOCAL_CLI")
    os.environ["GLOCAL_CLI"] = "1"  # flows leave result tables to the CLI, which prints them once (flows.log_table)
    try:
        return _run(args)
    finally:
        if previous is None:
            os.environ.pop("GLOCAL_CLI", None)
        else:
            os.environ["GLOCAL_CLI"] = previous


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, Kubernetes or `timeout` stopping glocal), handled as Ctrl-C is."""


def _terminated(signum, frame):
    raise Terminated()


def _run(args) -> int:
    import signal

    start = time.time()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run_command(args, start)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args, start: float) -> int:
    try:
        flows = args.command in FLOW_COMMANDS
        with flow_run_tags() if flows else contextlib.nullcontext(), \
                one_error_line() if flows and not args.debug else contextlib.nullcontext():
            code = args.fn(args)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated) or _by_sigterm(exc)
        print(f"glocal: {'terminated (SIGTERM)' if terminated else 'interrupted'}; finished shards are kept, the same command resumes",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`glocal runs | head`): stop quietly, and point stdout at /dev/null
        # so the interpreter's final flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 -- the CLI's one boundary
        if args.debug:
            raise
        code = exit_code(exc)
        hint = " (glocal --debug ... shows the traceback)" if code == EXIT_UNEXPECTED else ""
        print(f"glocal: error: {one_line(exc)}{hint}", file=sys.stderr)
        return code
    if args.command == "demo":
        print(f"done in {time.time() - start:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
