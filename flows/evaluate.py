"""The evaluate flow: dataset x backbone x methods x presets -> text embeddings, attention maps,
crop features, scores. Every stage unit is keyed by content and skipped when the catalog already
has it, so a rerun does no finished work and a killed run resumes where it stopped."""

from __future__ import annotations

import json

from prefect import flow, get_run_logger

from glocal.methods.budget import ScoreShape
from glocal.config import content_key
from glocal.text.dataset_text import TextInputs, text_inputs
from glocal.text.files import load_templates
from glocal.encode.cache import compute_device
from glocal.encode.cost import method_cost, model_tower
from glocal.backbones.identity import check_models, model_identity
from glocal.progress import progress, reach, stage_bar
from glocal.run.request import RunRequest
from glocal.run.plan import plan_run
from glocal.run.plan import score_key as run_score_key
from glocal.run.plan import check_memory
from glocal.text.sentence_sets import sentence_sets
from glocal.text.kinds import text_form
from storage import Catalog
from storage.held import holding_workspaces
from flows import log_table, tell
from flows.stage_clock import StageClock
from flows.cluster import cluster_flow, on_cluster, run_shards
from flows.crashed import mark_crashed_runs
from tasks.attention import attention_compute_task, attention_inputs, register_attention
from tasks.describe import import_task, store_description_lists
from tasks.embed_text import embed_text_task
from tasks.encode import encode_compute_task, encode_inputs, register_encode
from tasks.score import register_score, score_compute_task, score_inputs


def resolve_description_set(db: str, dataset: str, classnames: list[str], description_set: str | None, descriptions: str | None,
                            text_dataset: str | None, texts: TextInputs, lenient: bool) -> tuple[str, list[list[str]], list[str]]:
    """The description set a run uses, as (set id, sentences per class, notes). A file is imported
    as a set; with neither a set nor a file, the text dataset's CuPL file (or the class names) is
    stored as one, so every run names the set it used and the describe flow can re-score it."""
    catalog = Catalog(db)
    if description_set:
        info = catalog.description_set(description_set)
        if info["dataset"] != dataset or info["classes"] != len(classnames):
            raise ValueError(f"description set {description_set!r} was made for dataset {info['dataset']!r} "
                             f"({info['classes']} classes), not {dataset!r} ({len(classnames)} classes)")
        lists = catalog.description_lists(description_set)
        empty = [classnames[c] for c, sentences in enumerate(lists) if not sentences]
        if empty and not lenient:
            raise ValueError(f"description set {description_set!r} has no sentences for {len(empty)} class(es), e.g. {empty[:5]}: "
                             "rerun `glocal describe` to retry them, or pass --lenient-descriptions to use the class name")
        notes = [f"descriptions: {len(empty)} class(es) without sentences use the class name: {empty[:5]}"] if empty else []
        return description_set, [s or [c] for s, c in zip(lists, classnames)], notes
    if descriptions:
        report = import_task(db, dataset, descriptions, lenient)
        return report["set_id"], catalog.description_lists(report["set_id"]), [f"cupl: {line}" for line in report["notes"]]
    lists = texts.descriptions
    name = f"{text_dataset or 'classnames'}-default#{content_key('descriptions', lists)[:10]}"
    report = store_description_lists(db, dataset, name, f"text dataset {text_dataset!r}", classnames, lists)
    return report["set_id"], lists, [n for n in texts.notes if n.startswith("cupl:")]


@flow(name="evaluate", log_prints=True)
def evaluate(request: RunRequest, db: str = "glocal.duckdb") -> dict:
    """Score a ``RunRequest`` (``glocal.run.request``) on an ingested dataset. Both parameters are
    what a deployment carries (``prefect.yaml``): Prefect validates ``request``, given as a mapping
    of its fields, against the dataclass and builds it. Descriptions come from ``description_set`` (an id in the catalog), else the JSON file
    ``descriptions``, else the ``text_dataset``'s CuPL file. ``reuse_encode``: score from this
    stored encode artifact (a superset of the features these methods need) instead of running
    stages 3-4: the describe flow's re-score. Without it, a complete stored encode whose features
    cover this run's (same part keys) is reused. ``cluster``: run the attention and encode shards
    on Dask ("local" worker processes, ``workers`` of them, or a scheduler address); the flow then
    runs again, with the same request, as a subflow on that cluster. ``compile``: torch.compile the
    encoder's crop and window forwards (worth it on a GPU for large datasets; minutes of compile
    time per process on a CPU for a few per cent)."""
    with holding_workspaces():  # the workspace file stays open through each burst of bookkeeping (storage.held)
        plan = plan_run(request)  # bad methods / presets / values / kinds / budget fail before any compute
        if request.cluster and not on_cluster():
            with cluster_flow(evaluate, request.cluster, request.workers) as on_dask:
                return on_dask(request=request, db=db)
        logger = get_run_logger()
        check_models(request.model, request.attention_model)
        for crashed in mark_crashed_runs():
            logger.info(f"flow run {crashed} was left running by a killed glocal process: marked Crashed")
        catalog = workspace(db, logger)
        dataset = request.dataset
        info = catalog.dataset(dataset)
        classnames = info["classnames"]
        texts = text_inputs(request.text_dataset or "", classnames)  # shared files read and aligned once
        # CLIP-E's templates: the run's file, else the dataset folder's own (CLIP_benchmark), else the text dataset's
        if request.templates:
            texts.templates = load_templates(request.templates, dataset)
        elif info.get("templates"):
            texts.templates = info["templates"]
        set_id, description_lists, notes = None, None, []
        if "descriptions" in plan.text_needs:
            set_id, description_lists, notes = resolve_description_set(db, dataset, classnames, request.description_set, request.descriptions,
                                                                       request.text_dataset, texts, request.lenient_descriptions)
        sets, more_notes = sentence_sets(classnames, set(plan.text_needs), texts, description_lists, plan.waffle_form())
        notes += more_notes
        sentences_per_class = {kind: max(map(len, value)) for kind, value in sets.items() if kind != "classnames" and text_form(kind) != "one"}
        check_memory(list(plan.runs), ScoreShape(len(classnames), sentences_per_class, {}), plan.memory)  # a chunk that cannot fit fails before any compute
        for note in notes:
            tell(f"note: {note}")

        # 2. text embeddings, one artifact per (backbone, text kind, exact sentences)
        # models keyed by content (weights bytes / hub commit), not by their name
        model_key, attention_model_key = model_identity(request.model), model_identity(request.attention_model)
        text_key = plan.text_key(model_key, sets)
        sentences_path = catalog.artifact_root / "sentences" / f"{text_key}.json"
        sentences_path.parent.mkdir(parents=True, exist_ok=True)
        sentences_path.write_text(json.dumps(sets))
        clock = StageClock(device=str(compute_device()), images=sum(catalog.shard_sizes(dataset).values()))
        kind_keys = plan.text_kind_keys(model_key, sets)
        with clock.stage("text", len(kind_keys)) as timing:
            text_files, timing["computed"] = embed_text_task(db, text_key, kind_keys, str(sentences_path), request.model)

        encoded_shards = 0
        reuse = request.reuse_encode
        if reuse and len(catalog.finished_shards("encode", reuse)) != info["shards"]:
            logger.warning(f"encode: stored features {reuse[:12]} are incomplete or damaged; this run encodes its own")
            reuse = None
        if reuse:
            encode_key = reuse
            logger.info(f"encode: reusing stored features {encode_key[:12]} (no image encode)")
        else:
            # 3. attention maps, per shard
            attention_key = plan.attention_key(dataset, info["fingerprint"], model_key, attention_model_key)
            if attention_key is not None:
                todo = sorted(set(range(info["shards"])) - catalog.finished_shards("attention", attention_key))
                with clock.stage("attention", info["shards"]) as timing, \
                        progress(total=info["shards"], initial=info["shards"] - len(todo), desc="attention", unit="shard") as bar:
                    timing["computed"] = len(todo)
                    run_shards("attention", todo, attention_compute_task,
                               lambda shard: {**attention_inputs(catalog, info, shard, attention_key), "kind": plan.attention,
                                              "model": request.attention_model, "backbone_model": request.model,
                                              "crop_rounding": plan.crop_rounding},
                               lambda shard, result: register_attention(catalog, dataset, shard, attention_key, plan.attention,
                                                                        request.attention_model, result),
                               lambda shard: (logger.info(f"attention: shard {shard + 1}/{info['shards']} done"), bar.update(1)))

            # 4. crop-and-encode, per shard; a stored encode that covers these features is reused
            parts = plan.feature_parts(dataset, info["fingerprint"], model_key, attention_key, text_key)
            encode_key = plan.encode_key(parts)
            done = catalog.finished_shards("encode", encode_key)
            covering = None if len(done) == info["shards"] else catalog.covering_encode(parts, info["shards"])
            if covering:
                encode_key, done = covering, set(range(info["shards"]))
                logger.info(f"encode: stored features {encode_key[:12]} cover {sorted(plan.needs)} (same crops); no image encode")
            todo = sorted(set(range(info["shards"])) - done)
            if len(todo) < info["shards"]:
                logger.info(f"encode: {info['shards'] - len(todo)}/{info['shards']} shard(s) already stored, skipped")
            needs_list, kind_configs = sorted(plan.needs), plan.kind_configs()
            shard_inputs = encode_inputs(catalog, info, encode_key, attention_key, text_files, needs_list) if todo else None

            sizes = catalog.shard_sizes(dataset)
            finished_images = sum(sizes.get(shard, 0) for shard in range(info["shards"]) if shard not in todo)

            def encoded(shard: int) -> None:
                nonlocal encoded_shards, finished_images
                encoded_shards += 1
                finished_images += sizes.get(shard, 0)
                logger.info(f"encode: shard {shard + 1}/{info['shards']} done")
                reach(bar, finished_images)  # images ticked inside the shard (in this process), or the whole shard at once (Dask)

            with clock.stage("encode", info["shards"]) as timing, \
                    stage_bar(sum(sizes.values()), "encode", unit="image", initial=finished_images) as bar:
                timing["computed"], timing["precision"] = len(todo), plan.precision
                run_shards("encode", todo, encode_compute_task,
                           lambda shard: {**shard_inputs(shard), "backbone_model": request.model, "needs": needs_list,
                                          "configs": kind_configs, "batch_size": request.batch_size, "compile": request.compile,
                                          "crop_rounding": plan.crop_rounding, "precision": plan.precision},
                           lambda shard, result: register_encode(catalog, dataset, shard, encode_key, request.model, needs_list,
                                                                 attention_key, parts, result),
                           encoded)

        # 5. scores, per shard: one shard's features in memory at a time; DuckDB computes accuracy
        method_configs = plan.method_configs()
        run_id = plan.run_id(dataset, info["fingerprint"], model_key, attention_model_key, text_key)
        catalog.start_run(run_id, dataset, request.model, str(request.attention_model), plan.methods, method_configs, text_key, set_id,
                          request.stored_params(), encode_key, info["fingerprint"], model_key)
        tower = model_tower(request.model)  # the costs, counted from the tower's shape (glocal.encode.cost)
        catalog.store_costs(run_id, {run.spec.name: method_cost(run.spec, run.config, tower) for run in plan.runs})
        with clock.stage("score", info["shards"]) as timing, progress(total=info["shards"], desc="score", unit="shard") as bar:
            timing["computed"] = info["shards"]
            accuracy = score_stage(catalog, info, run_id, method_configs, encode_key, text_files, plan.memory,
                                   on_done=lambda shard: (logger.info(f"score: shard {shard + 1}/{info['shards']} done"), bar.update(1)),
                                   on_skipped=lambda done: (logger.info(f"score: {done}/{info['shards']} shard(s) already stored, skipped"), bar.update(done),
                                                            timing.update(computed=info["shards"] - done)))
        catalog.store_stage_times(run_id, clock.rows)
        table = format_accuracy(run_id, accuracy)
        log_table(table)  # the command line prints it on stdout instead, once
        return {"run_id": run_id, "table": table, "description_set": set_id, "accuracy": {m: top1 for _, m, _, _, top1 in accuracy}, "encode_key": encode_key, "text_key": text_key,
                "encoded_shards": encoded_shards}


def score_stage(catalog: Catalog, info: dict, run_id: str, method_configs: dict[str, dict], encode_key: str, text_files: list[str], memory: int,
                compute=score_compute_task, on_done=lambda shard: None, on_skipped=lambda done: None) -> list[tuple]:
    """Stage 5 of one run: score the shards not yet stored (on the flow's Dask cluster when it
    has one), then load every shard's predictions into the catalog in one bulk insert and compute
    accuracy there. The key covers the run (dataset content, models, methods, configs, sentences)
    and the features, so a rerun scores only missing shards. -> accuracy rows."""
    score_key = run_score_key(run_id, encode_key)
    todo = sorted(set(range(info["shards"])) - catalog.finished_shards("score", score_key))
    if len(todo) < info["shards"]:
        on_skipped(info["shards"] - len(todo))
    shard_inputs = score_inputs(catalog, info, score_key, encode_key, text_files) if todo else None
    run_shards("score", todo, compute, lambda shard: {**shard_inputs(shard), "run_id": run_id, "configs": method_configs, "memory": memory},
               lambda shard, result: register_score(catalog, run_id, shard, score_key, result), on_done)
    finished = catalog.finished_shards("score", score_key)  # each file checked (hashed) right before it is loaded
    if len(finished) != info["shards"]:
        raise RuntimeError(f"score: shard(s) {sorted(set(range(info['shards'])) - finished)} changed while this run went on; "
                           "rerun the same command to compute them again")
    paths = [path for _, path in sorted(catalog.artifact_paths("score", score_key).items())]
    return catalog.store_predictions(run_id, paths, list(method_configs), sum(catalog.registered_rows("score", score_key).values()))


def workspace(db: str, logger) -> Catalog:
    """The run's catalog, whose damaged artifacts are reported in the run's log (and on stderr)."""
    catalog = Catalog(db)
    catalog.on_damage = lambda damage: logger.warning(damage.report())
    return catalog


def format_accuracy(run_id: str, accuracy: list[tuple]) -> str:
    lines = [f"run {run_id}", f"{'method':8s} {'images':>6s} {'top1_pct':>8s}"]
    lines += [f"{method:8s} {n:6d} {100 * top1:8.2f}" for _, method, _, n, top1 in accuracy]
    return "\n".join(lines)
