"""Commands that run many evaluations: `sweep` (one parameter's values) and `reproduce` (a paper table's protocol)."""

from __future__ import annotations

from app.commands.common import (add_output_options, check_request, flow_context, layouts, split_values, start_prefect_server,
                                 uses_workspace, written)
from app.options import add_run_flags, dataset_name, positive_int, request_from_args


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
    start_prefect_server()
    from flows.sweep import sweep

    with flow_context(args):
        result = sweep(method=args.method, param=param, values=values, request=request, db=args.db, preset=args.preset,
                       baselines=baselines or None)
    columns = ["sweep_id", "role", "method", args.param.partition("=")[0], "run_id", "encoded_shards", "top1_pct"]
    rows = [(result["sweep_id"], p["role"], p["method"], p["value"], p["run_id"], p["encoded_shards"],
             None if p["top1"] is None else round(100 * p["top1"], 4)) for p in result["points"]]
    if result.get("over_seeds"):  # a seed sweep: a last row with the mean over the seeds, and the std column
        seeds = result["over_seeds"]
        columns.append("top1_pct_std")
        rows = [(*row, None) for row in rows] + [(result["sweep_id"], "over seeds", seeds["method"], f"{seeds['seeds']} seeds", None, None,
                                                  seeds["top1_pct_mean"], seeds["top1_pct_std"])]
    show_study(args, columns, rows, result["table"], lambda catalog: catalog.sweep_runs(result["sweep_id"]))
    return 0


def show_study(args, columns: list[str], rows: list[tuple], table: str, runs) -> None:
    """A study's results: rows for scripts (--format / --output), else its table on stdout; then,
    with --report, the page `glocal report` writes for its runs (``runs(catalog)``, in order)."""
    if args.format or args.output:
        from glocal.results.tables import emit

        written(emit(columns, rows, args.format, args.output))
    else:
        print(table)
    if args.report:
        from app.report import build_report
        from storage import Catalog

        summary = build_report(args.db, runs(Catalog.read_only(args.db)), args.report)
        print(f"wrote {summary['path']}")


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
    start_prefect_server()

    with flow_context(args):
        result = reproduce(table=args.table, data_root=args.data_root, db=args.db, backbones=parse_backbones(args.backbones),
                           methods=args.methods.split(",") if args.methods else None, attention_model=args.attention_model,
                           limit=args.limit, n_crops=args.n_crops, batch_size=args.batch_size, reingest=args.reingest,
                           score_memory=args.score_memory, forms=args.forms)
    columns = ["repro_id", "dataset", "backbone", "method", "images", "measured", "measured_std", "published", "form", "run_id"]
    rows = [(result["repro_id"], c["dataset"], c["backbone"], c["method"], c["images"], c["measured"], c["measured_std"], c["published"],
             c["form"], c["run_id"]) for c in result["cells"]]
    show_study(args, columns, rows, result["table"], lambda catalog: catalog.reproduction_runs(result["repro_id"]))
    return 0


def add(sub) -> None:
    """This group's subcommands."""
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
                        f"{d}: {'|'.join(spec.folders)}" for d, spec in layouts().items()))
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
