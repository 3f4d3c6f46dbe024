"""Commands that read stored results: `sql`, `runs`, `compare`, `report`."""

from __future__ import annotations

import sys

from app.commands.common import add_output_options, clip_benchmark_folder, rounded, uses_workspace, write_clip_benchmark, written
from app.options import non_negative_int, positive_float, positive_int


def cmd_sql(args) -> int:
    from glocal.results.tables import emit
    from storage import Catalog

    import duckdb

    try:
        columns, rows, notes = Catalog.read_only(args.db).query(args.query, timeout_s=args.timeout, memory_limit=args.memory_limit,
                                                                 max_rows=args.max_rows)
    except duckdb.Error as exc:
        raise ValueError(f"SQL error (the database is opened read-only): {exc}") from None
    for note in notes:
        print(f"glocal: note: {note}", file=sys.stderr)
    written(emit(columns, rows, args.format, args.output))
    return 0


def cmd_runs(args) -> int:
    from glocal.results.tables import emit
    from storage import Catalog

    from glocal.results.labels import differing, method_setting
    from glocal.results.seeds import seed_groups

    if args.format == "clip_benchmark":
        clip_benchmark_folder(args)
        write_clip_benchmark(Catalog.read_only(args.db).result_rows(), args.output)
        return 0
    catalog = Catalog.read_only(args.db)
    accuracy, params = catalog.accuracy(), catalog.run_params()
    # each row named by what differs from the other rows of its (dataset, backbone, method): a preset, a swept field
    groups: dict[tuple, list[int]] = {}
    for index, (_, dataset, backbone, method, _, _) in enumerate(accuracy):
        groups.setdefault((dataset, backbone, method), []).append(index)
    setting = [""] * len(accuracy)
    for members in groups.values():
        labels = differing([method_setting(params.get(accuracy[i][0], {}), accuracy[i][3]) for i in members])
        for i, label in zip(members, labels):
            setting[i] = label
    metrics, costs = catalog.metrics(), catalog.costs()
    # (runs stored before a metric or the cost existed: empty)
    rows = [(run_id, dataset, backbone, method, label, images, round(100 * top1, 2),
             *(rounded(v, 2) for v in metrics.get((run_id, method), (None, None))),
             rounded(costs.get((run_id, method), {}).get("gflop_per_image"), 3))
            for (run_id, dataset, backbone, method, images, top1), label in zip(accuracy, setting)]
    columns = ["run_id", "dataset", "backbone", "method", "setting", "images", "top1_pct", "top5_pct", "mean_per_class_recall_pct",
               "gflop_per_image"]
    over_seeds = seed_groups(accuracy, params)
    if over_seeds:  # runs that differ only in a method's seed: a row each with the mean over them, and its std
        columns.append("top1_pct_std")
        rows = [(*row, None) for row in rows] + over_seeds
    written(emit(columns, rows, args.format, args.output))
    return 0


def cmd_compare(args) -> int:
    from glocal.results.stats import compare_paired
    from storage import Catalog

    catalog = Catalog.read_only(args.db)
    (run_a, method_a, data_a), (run_b, method_b, data_b) = catalog.resolve_scored(args.a), catalog.resolve_scored(args.b)
    if data_a != data_b:
        same = catalog.latest_scored(method_b, data_a)
        example = f"`glocal compare {run_a}:{method_a} {same}:{method_b}`" if same else f"`glocal compare RUN_A:{method_a} RUN_B:{method_b}`"
        raise ValueError(f"{args.a} is run {run_a} on dataset {data_a!r} but {args.b} is run {run_b} on {data_b!r}: a paired comparison "
                         f"needs the same images; name both runs as RUN:METHOD, e.g. {example} (`glocal runs` lists them)")
    ids, correct_a, correct_b = catalog.paired_correct((run_a, method_a), (run_b, method_b))
    if not ids:
        raise ValueError(f"{run_a}:{method_a} and {run_b}:{method_b} share no scored image")
    c = compare_paired(correct_a, correct_b, resamples=args.resamples, seed=args.seed)
    # CLIP_benchmark's other metrics of each side, over its run's images (None for runs stored before them)
    (top5_a, recall_a), (top5_b, recall_b) = (catalog.metrics(run).get((run, method), (None, None))
                                              for run, method in ((run_a, method_a), (run_b, method_b)))
    if args.format or args.output:
        from glocal.results.tables import emit

        columns = ["a", "b", "dataset", "images", "top1_a_pct", "top1_b_pct", "difference_pct", "interval_low_pct", "interval_high_pct",
                   "only_a", "only_b", "p_value", "top5_a_pct", "top5_b_pct", "mean_per_class_recall_a_pct", "mean_per_class_recall_b_pct"]
        row = (f"{run_a}:{method_a}", f"{run_b}:{method_b}", data_a, c.images, 100 * c.accuracy_a, 100 * c.accuracy_b, 100 * c.difference,
               100 * c.interval[0], 100 * c.interval[1], c.only_a, c.only_b, c.p_value, top5_a, top5_b, recall_a, recall_b)
        written(emit(columns, [row], args.format, args.output))
        return 0
    print(f"A = {run_a}:{method_a}  B = {run_b}:{method_b}  on {c.images} paired images ({data_a})")
    print(f"accuracy A {100 * c.accuracy_a:.2f}%  B {100 * c.accuracy_b:.2f}%")
    print(f"A - B = {100 * c.difference:+.2f} points, bootstrap 95% interval [{100 * c.interval[0]:+.2f}, {100 * c.interval[1]:+.2f}]")
    print(f"McNemar: A right / B wrong {c.only_a}, B right / A wrong {c.only_b}, exact p = {c.p_value:.4g}")
    if top5_a is not None and top5_b is not None:
        print(f"top-5 A {top5_a:.2f}%  B {top5_b:.2f}%;  mean per-class recall A {recall_a:.2f}%  B {recall_b:.2f}%  (each over its run's images)")
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


def add(sub) -> None:
    """This group's subcommands."""
    sql = sub.add_parser("sql", help="read-only SQL over the catalog and the Parquet views", description="Tables: runs, predictions, accuracy, images, bad_images, datasets, artifacts, description_sets, description_classes, descriptions, sweeps, sweep_points, reproductions, reproduction_cells, draw_accuracy; views: text_artifacts, attention_artifacts, encode_artifacts, score_artifacts (the registered files that check out).")
    sql.add_argument("query", help="one SELECT statement")
    sql.add_argument("--timeout", type=positive_float, default=30.0,
                     help="stop the query after this many seconds (it holds the workspace: a running evaluate waits for it)")
    sql.add_argument("--memory-limit", default="2GB", help="DuckDB's memory for the query (e.g. 512MB, 8GB)")
    sql.add_argument("--max-rows", type=positive_int, default=1_000_000, help="fetch at most this many rows (the rest are named, not shown)")
    add_output_options(sql)
    uses_workspace(sql, cmd_sql)

    runs = sub.add_parser("runs", help="list runs and their accuracy")
    add_output_options(runs, clip_benchmark=True)
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
    rep.add_argument("--gallery", type=non_negative_int, default=6, help="images per gallery (runs with the same images and crops share one)")
    uses_workspace(rep, cmd_report)
