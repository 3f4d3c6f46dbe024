"""`glocal describe`: class descriptions from an LLM or a file, then the re-score of the runs that used the old ones."""

from __future__ import annotations

import os

from app.commands.common import flow_context, require_workspace, start_prefect_server, uses_workspace
from app.options import dataset_name, positive_float, positive_int


def cmd_describe(args) -> int:
    require_workspace(args.db)
    from storage import Catalog

    Catalog(args.db).dataset(args.dataset)  # not ingested: said before Prefect's server starts
    for set_id in args.replace or []:
        Catalog(args.db).description_set(set_id)
    if not args.import_file and not (args.llm_model or os.environ.get("GLOCAL_LLM_MODEL")):
        raise ValueError("give --llm-model (or set GLOCAL_LLM_MODEL) to generate, or --import FILE to import")
    start_prefect_server()
    from flows.describe import describe
    options = {k: v for k, v in (("timeout_s", args.timeout), ("max_attempts", args.max_attempts), ("max_tokens", args.max_tokens))
               if v is not None}
    with flow_context(args, loads_models=not args.no_rescore):
        result = describe(dataset=args.dataset, db=args.db, llm_model=args.llm_model, import_file=args.import_file,
                          prompt_set=args.prompt_set, sentences_per_prompt=args.sentences_per_prompt,
                          max_sentences=args.max_sentences, new_version=args.new_version, concurrency=args.concurrency,
                          lenient=args.lenient, rescore=not args.no_rescore, replace=args.replace, llm_options=options)
    if result.get("table"):
        print(result["table"])  # old vs new accuracy on stdout
    return 0 if result["report"]["status"] == "complete" else 3


def add(sub) -> None:
    """This group's subcommands."""
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
    ds.add_argument("--prompt-set", default="cupl-v1", help="prompt set name (glocal/text/prompt_sets/) or JSON path")
    ds.add_argument("--sentences-per-prompt", type=positive_int, default=3, help="sentences asked of the LLM per prompt of the set")
    ds.add_argument("--max-sentences", type=positive_int, default=15, help="M sentences kept per class")
    ds.add_argument("--concurrency", type=positive_int, default=4, help="requests in flight")
    ds.add_argument("--timeout", type=positive_float, default=None, help="seconds per request (default 60)")
    ds.add_argument("--max-tokens", type=positive_int, default=None, help="longest answer asked of the LLM, in tokens (default 256)")
    ds.add_argument("--max-attempts", type=positive_int, default=None, help="attempts per request on timeouts/429/5xx (default 4)")
    ds.add_argument("--new-version", action="store_true", help="start a new version instead of continuing the latest")
    ds.add_argument("--lenient", action="store_true", help="classes without sentences fall back to the class name")
    ds.add_argument("--no-rescore", action="store_true", help="only store the set")
    ds.add_argument("--replace", action="append", help="re-score the runs that used this set (repeatable; default: every "
                                                       "set a finished run on the dataset used)")
    uses_workspace(ds, cmd_describe)
