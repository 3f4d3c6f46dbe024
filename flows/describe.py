"""The describe flow: new class descriptions (an LLM, or a JSON file), then every stored run that
used the old description set is re-embedded and re-scored with the new one, and old vs new
accuracy is printed side by side. Images are not re-encoded: stored crop features are reused
(methods whose crops are chosen by the text, LGCA, are left out and named)."""

from __future__ import annotations

from flows import log_table, tell
from prefect import flow

from flows.evaluate import evaluate
from glocal.run.request import RunRequest
from glocal.run.plan import resolve_methods, text_guided
from storage import Catalog
from storage.held import holding_workspaces
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
    replace: list[str] | str | None = None,
    llm_options: dict | None = None,
) -> dict:
    """``replace``: the description sets whose runs are re-scored (default: every set a finished
    run on ``dataset`` used, so no run the user cares about is skipped). ``llm_options``: more
    DescribeConfig fields (timeouts, retries)."""
    with holding_workspaces():  # the workspace file stays open through each burst of bookkeeping (storage.held)
        catalog = Catalog(db)
        catalog.dataset(dataset)  # not ingested: a clear error before any request
        if import_file:
            report = import_task(db, dataset, import_file, lenient)
        else:
            config = dict(prompt_set=prompt_set, sentences_per_prompt=sentences_per_prompt, max_sentences=max_sentences, **(llm_options or {}))
            report = describe_task(db, dataset, llm_model, config, new_version, concurrency)
        new_set = report["set_id"]
        tell(describe_summary(report))
        for note in report.get("notes", []):
            tell(f"note: {note}")
        named = [replace] if isinstance(replace, str) else list(replace or [])
        for set_id in named:
            catalog.description_set(set_id)  # an unknown id: a clear error before any re-score
        old_sets = [s for s in (named or catalog.description_sets_used(dataset)) if s != new_set]
        result = {"description_set": new_set, "report": report, "old_sets": old_sets, "comparison": [], "left_out": []}
        if not rescore or not old_sets:
            tell("re-scoring skipped (--no-rescore)" if not rescore else "no stored run to re-score")
            return result
        if report["status"] != "complete" and not lenient:
            raise ValueError(f"{new_set} is missing {len(report['failed'])} class(es) ({list(report['failed'])[:5]}); "
                             "rerun `glocal describe` to fill them, or pass --lenient to score them by class name")
        seen = set()
        for old_set in old_sets:
            for old in catalog.runs_using(old_set):
                params = dict(old["params"])
                runs = resolve_methods(params["methods"], params.get("presets"))
                kept = [r.spec.name for r in runs if not text_guided(r)]
                left_out = [r.spec.name for r in runs if text_guided(r)]
                if left_out:
                    tell(f"run {old['run_id']}: {left_out} choose crops with the text, so they need a re-encode; "
                                "run `glocal evaluate` with --description-set for them")
                    result["left_out"] += [(old["run_id"], name) for name in left_out]
                if not kept:
                    continue
                request = RunRequest.of(**params).replace(methods=kept, lenient_descriptions=params.get("lenient_descriptions") or lenient,
                                                          description_set=new_set, reuse_encode=old["encode_key"])
                new = evaluate(request=request, db=db)
                before = {method: top1 for _, _, _, method, _, top1 in catalog.accuracy(old["run_id"])}
                for method in kept:
                    if (old["run_id"], method) not in seen:
                        seen.add((old["run_id"], method))
                        result["comparison"].append((old_set, old["run_id"], new["run_id"], method, before.get(method), new["accuracy"][method]))
        result["table"] = format_comparison(new_set, result["comparison"])
        log_table(result["table"])
        return result


def describe_summary(report: dict) -> str:
    dropped = report["dropped"]
    lines = [f"description set {report['set_id']}: {report['status']}, {report['classes_ok']}/{report['classes']} classes, "
             f"{report['sentences']} sentences (dropped: {dropped['empty']} empty, {dropped['duplicate']} duplicate, "
             f"{dropped['too_long']} too long, {dropped.get('refusal', 0)} refusals, {dropped.get('preamble', 0)} preambles)"]
    lines += [f"  failed: {name}: {reason}" for name, reason in report["failed"].items()]
    return "\n".join(lines)


def format_comparison(new_set: str, rows: list[tuple]) -> str:
    """Old vs new accuracy per re-scored (run, method), each row naming the set it replaced."""
    lines = [f"new: {new_set}", f"{'old run':12s} {'new run':12s} {'method':8s} {'old':>7s} {'new':>7s} {'change':>7s}  old set"]
    for old_set, old_run, new_run, method, before, after in rows:
        old_text = f"{100 * before:6.2f}%" if before is not None else "    n/a"
        change = f"{100 * (after - before):+6.2f}" if before is not None else "    n/a"
        lines.append(f"{old_run:12s} {new_run:12s} {method:8s} {old_text} {100 * after:6.2f}% {change}  {old_set}")
    return "\n".join(lines)
