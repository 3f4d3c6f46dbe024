"""The describe flow: new class descriptions (an LLM, or a JSON file), then every stored run that
used the old description set is re-embedded and re-scored with the new one, and old vs new
accuracy is printed side by side. Images are not re-encoded: stored crop features are reused
(methods whose crops are chosen by the text, LGCA, are left out and named)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.evaluate import evaluate
from glocal.scoring import resolve_methods, text_guided
from storage import Catalog
from tasks.describe import describe_task, import_task


@flow(name="describe", log_prints=True)
def describe(
    dataset: str,
    db: str = "glocal.duckdb",
    llm_model: str | None = None,
    import_file: str | None = None,
    prompt_set: str = "cupl-v1",
    sentences_per_prompt: int = 3,
    max_sentences: int = 15,
    new_version: bool = False,
    concurrency: int = 4,
    lenient: bool = False,
    rescore: bool = True,
    replace: str | None = None,
    llm_options: dict | None = None,
) -> dict:
    """``replace``: the description set whose runs are re-scored (default: the set used by the
    latest run on ``dataset``). ``llm_options``: more DescribeConfig fields (timeouts, retries)."""
    logger = get_run_logger()
    catalog = Catalog(db)
    catalog.dataset(dataset)  # not ingested: a clear error before any request
    if import_file:
        report = import_task(db, dataset, import_file, lenient)
    else:
        config = dict(prompt_set=prompt_set, sentences_per_prompt=sentences_per_prompt, max_sentences=max_sentences, **(llm_options or {}))
        report = describe_task(db, dataset, llm_model, config, new_version, concurrency)
    new_set = report["set_id"]
    print(describe_summary(report))
    old_set = replace or catalog.latest_run_description_set(dataset)
    result = {"description_set": new_set, "report": report, "old_set": old_set, "comparison": [], "left_out": []}
    if not rescore or old_set is None or old_set == new_set:
        logger.info("no stored run to re-score" if old_set is None else f"re-scoring skipped (old set {old_set!r})")
        return result
    if report["status"] != "complete" and not lenient:
        raise ValueError(f"{new_set} is missing {len(report['failed'])} class(es) ({list(report['failed'])[:5]}); "
                         "rerun `glocal describe` to fill them, or pass --lenient to score them by class name")
    for old in catalog.runs_using(old_set):
        params = dict(old["params"])
        runs = resolve_methods(params["methods"], params.get("presets"))
        kept = [r.spec.name for r in runs if not text_guided(r)]
        left_out = [r.spec.name for r in runs if text_guided(r)]
        if left_out:
            logger.info(f"run {old['run_id']}: {left_out} choose crops with the text, so they need a re-encode; "
                        "run `glocal evaluate` with --description-set for them")
            result["left_out"] += [(old["run_id"], name) for name in left_out]
        if not kept:
            continue
        params.update(methods=kept, lenient_descriptions=params.get("lenient_descriptions") or lenient)
        new = evaluate(db=db, description_set=new_set, reuse_encode=old["encode_key"], **params)
        before = {method: top1 for _, _, _, method, _, top1 in catalog.accuracy(old["run_id"])}
        for method in kept:
            result["comparison"].append((old["run_id"], new["run_id"], method, before.get(method), new["accuracy"][method]))
    result["table"] = format_comparison(old_set, new_set, result["comparison"])
    print(result["table"])
    return result


def describe_summary(report: dict) -> str:
    dropped = report["dropped"]
    lines = [f"description set {report['set_id']}: {report['status']}, {report['classes_ok']}/{report['classes']} classes, "
             f"{report['sentences']} sentences (dropped: {dropped['empty']} empty, {dropped['duplicate']} duplicate, "
             f"{dropped['too_long']} too long, {dropped.get('refusal', 0)} refusals, {dropped.get('preamble', 0)} preambles)"]
    lines += [f"  failed: {name}: {reason}" for name, reason in report["failed"].items()]
    return "\n".join(lines)


def format_comparison(old_set: str, new_set: str, rows: list[tuple]) -> str:
    lines = [f"old: {old_set}", f"new: {new_set}", f"{'old run':12s} {'new run':12s} {'method':8s} {'old':>7s} {'new':>7s} {'change':>7s}"]
    for old_run, new_run, method, before, after in rows:
        old_text = f"{100 * before:6.2f}%" if before is not None else "    n/a"
        change = f"{100 * (after - before):+6.2f}" if before is not None else "    n/a"
        lines.append(f"{old_run:12s} {new_run:12s} {method:8s} {old_text} {100 * after:6.2f}% {change}")
    return "\n".join(lines)
