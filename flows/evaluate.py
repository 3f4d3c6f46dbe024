"""The evaluate flow: dataset x backbone x methods x presets -> text embeddings, attention maps,
crop features, scores. Every stage unit is keyed by content and skipped when the catalog already
has it, so a rerun does no finished work and a killed run resumes where it stopped."""

from __future__ import annotations

import json

from prefect import flow, get_run_logger

from glocal.config import config_to_dict, content_key
from glocal.crop_kinds import CROP_KINDS, image_kinds, kind_config_key
from glocal.text_kinds import TEXT_KINDS, build_sentences
from glocal.identity import check_models, model_identity
from glocal.progress import progress, reach, stage_bar
from glocal.demo_data import SHARED_DATA, TextInputs, check_text_dataset, text_inputs
from glocal.budget import ScoreShape, parse_memory
from glocal.scoring import TEXT_GUIDED_FEATURES, build_runs, waffle_form, check_memory, configs_by_type, feature_parts, image_needs, text_needs
from glocal.text import clip_d_sentences, prompt_sentences, template_sentences
from glocal.waffle_text import waffle_set
from storage import Catalog
from flows.cluster import cluster_flow, on_cluster, run_shards
from flows.crashed import mark_crashed_runs
from tasks.attention import attention_compute_task, attention_inputs, register_attention
from tasks.describe import import_task, store_description_lists
from tasks.embed_text import embed_text_task
from tasks.encode import encode_compute_task, encode_inputs, register_encode
from tasks.score import register_score, score_compute_task, score_inputs


def sentence_sets(classnames: list[str], needed: set[str], texts: TextInputs,
                  descriptions: list[list[str]] | None = None, waffle: tuple[str, int] = ("glocal", 1)) -> tuple[dict, list[str]]:
    """Every sentence set the methods need, aligned to the classes (errors raised here, before
    any compute). ``descriptions`` (from a description set) replaces the text dataset's CuPL file;
    ``waffle``: (construction, seed) of the Waffle sentences."""
    notes = [n for n in texts.notes if descriptions is None or not n.startswith("cupl:")]
    sets: dict = {"classnames": classnames}
    if "prompts" in needed:
        sets["prompts"] = prompt_sentences(classnames)
    if "templates" in needed:
        sets["templates"] = template_sentences(classnames, texts.templates)
    if "descriptions" in needed:
        sets["descriptions"] = descriptions if descriptions is not None else texts.descriptions
    if "clip_d" in needed:
        sets["clip_d"] = clip_d_sentences(classnames, texts.clip_d)
    if "waffle" in needed:
        sets["waffle"] = waffle_set(classnames, texts.clip_d, *waffle, SHARED_DATA / "waffle_words.json")
    for name in sorted(needed & set(TEXT_KINDS)):  # registered text kinds
        sets[name] = build_sentences(name, classnames, texts)
    return sets, notes


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
def evaluate(
    dataset: str,
    model: str,
    methods: list[str],
    db: str = "glocal.duckdb",
    attention_model: str | None = None,
    presets: dict[str, str] | None = None,
    n_crops: int | None = None,
    text_dataset: str | None = None,
    descriptions: str | None = None,
    lenient_descriptions: bool = False,
    batch_size: int = 64,
    description_set: str | None = None,
    reuse_encode: str | None = None,
    overrides: dict[str, dict] | None = None,
    extra_needs: list[str] | None = None,
    cluster: str | None = None,
    workers: int | None = None,
    compile: bool = False,
    score_memory: str | int | None = None,
) -> dict:
    """Score ``methods`` on an ingested dataset. Descriptions come from ``description_set`` (an id
    in the catalog), else the JSON file ``descriptions``, else the ``text_dataset``'s CuPL file.
    ``reuse_encode``: score from this stored encode artifact (a superset of the features these
    methods need) instead of running stages 3-4: the describe flow's re-score. Without it, a
    complete stored encode whose features cover this run's (same part keys) is reused.
    ``overrides``: {method: {config field: value}} on top of presets and ``n_crops``.
    ``extra_needs``: feature kinds to encode beyond the methods' own (a sweep encodes the union of
    its points' kinds once, so every point that differs only in scoring reuses it).
    ``cluster``: run the attention and encode shards on Dask ("local" worker processes, ``workers``
    of them, or a scheduler address); the flow then runs again as a subflow on that cluster.
    ``compile``: torch.compile the encoder's crop and window forwards (worth it on a GPU for large
    datasets; minutes of compile time per process on a CPU for a few per cent)."""
    if cluster and not on_cluster():
        arguments = dict(dataset=dataset, model=model, methods=methods, db=db, attention_model=attention_model, presets=presets,
                         n_crops=n_crops, text_dataset=text_dataset, descriptions=descriptions,
                         lenient_descriptions=lenient_descriptions, batch_size=batch_size, description_set=description_set,
                         reuse_encode=reuse_encode, overrides=overrides, extra_needs=extra_needs, compile=compile,
                         score_memory=score_memory)
        build_runs(methods, presets, n_crops, overrides)  # bad input fails before a cluster starts
        with cluster_flow(evaluate, cluster, workers) as on_dask:
            return on_dask(**arguments)
    logger = get_run_logger()
    runs = build_runs(methods, presets, n_crops, overrides)  # bad methods / presets / values fail before any compute
    check_text_dataset(text_dataset)
    check_models(model, attention_model)
    for crashed in mark_crashed_runs():
        logger.info(f"flow run {crashed} was left running by a killed glocal process: marked Crashed")
    catalog = Catalog(db)
    info = catalog.dataset(dataset)
    classnames = info["classnames"]
    needed_text = text_needs(runs)
    texts = text_inputs(text_dataset or "", classnames)  # shared files read and aligned once
    set_id, description_lists, notes = None, None, []
    if "descriptions" in needed_text:
        set_id, description_lists, notes = resolve_description_set(db, dataset, classnames, description_set, descriptions,
                                                                   text_dataset, texts, lenient_descriptions)
    sets, more_notes = sentence_sets(classnames, needed_text, texts, description_lists, waffle_form(runs))
    notes += more_notes
    memory = parse_memory(score_memory)
    check_memory(runs, ScoreShape(len(classnames), {kind: max(map(len, value)) for kind, value in sets.items() if kind not in ("classnames", "prompts")}, {}),
                 memory)  # a scoring chunk that cannot fit fails before any compute
    for note in notes:
        logger.info(note)
    needs = image_needs(runs) | set(extra_needs or ())
    known = image_kinds()
    unknown_needs = needs - known
    if unknown_needs:
        raise ValueError(f"unknown feature kinds {sorted(unknown_needs)}; kinds: {', '.join(sorted(known))}")
    configs = configs_by_type(runs)
    unconfigured = [kind for kind in needs & set(CROP_KINDS) if CROP_KINDS[kind].config is not None and kind_config_key(kind) not in configs]
    if needs & {"raw", "feat"} and "abs_config" not in configs or "wca" in needs and "wca_config" not in configs \
            or "lgca" in needs and "lgca_config" not in configs or unconfigured:
        raise ValueError(f"extra_needs {sorted(extra_needs or [])} asks for crops no method of this run configures")
    if needs & {"raw", "feat"} and configs["abs_config"].attention == "dino" and not attention_model:
        raise ValueError("ABS with DINO attention needs --attention-model (a DINO/DINOv2 id or dir)")

    # 2. text embeddings, keyed by backbone + the exact sentences
    # models keyed by content (weights bytes / hub commit), not by their name
    model_key, attention_model_key = model_identity(model), model_identity(attention_model)
    text_key = content_key("text", model_key, sets)
    sentences_path = catalog.artifact_root / "sentences" / f"{text_key}.json"
    sentences_path.parent.mkdir(parents=True, exist_ok=True)
    sentences_path.write_text(json.dumps(sets))
    embed_text_task(db, text_key, str(sentences_path), model)

    encoded_shards = 0
    if reuse_encode:
        if len(catalog.finished_shards("encode", reuse_encode)) != info["shards"]:
            raise ValueError(f"encode artifact {reuse_encode!r} is not complete for {dataset!r}; run evaluate without reuse")
        encode_key = reuse_encode
        logger.info(f"encode: reusing stored features {encode_key[:12]} (no image encode)")
    else:
        # 3. attention maps, per shard
        attention_key = None
        if needs & {"raw", "feat"}:
            kind = configs["abs_config"].attention
            attention_key = content_key("attention", dataset, info["fingerprint"], kind, attention_model_key if kind == "dino" else None,
                                        model_key if kind == "clip" else None)
            todo = sorted(set(range(info["shards"])) - catalog.finished_shards("attention", attention_key))
            with progress(total=info["shards"], initial=info["shards"] - len(todo), desc="attention", unit="shard") as bar:
                run_shards("attention", todo, attention_compute_task,
                           lambda shard: {**attention_inputs(catalog, info, shard, attention_key), "kind": kind,
                                          "model": attention_model, "backbone_model": model},
                           lambda shard, result: register_attention(catalog, dataset, shard, attention_key, kind, attention_model, result),
                           lambda shard: (logger.info(f"attention: shard {shard + 1}/{info['shards']} done"), bar.update(1)))

        # 4. crop-and-encode, per shard; a stored encode that covers these features is reused
        parts = feature_parts(configs, needs, (dataset, info["fingerprint"], model_key), attention_key,
                              text_key if needs & TEXT_GUIDED_FEATURES else None)
        config_dicts = {name: {k: v for k, v in config_to_dict(cfg).items() if k != "type"} for name, cfg in configs.items()}
        encode_key = content_key("encode", parts)
        done = catalog.finished_shards("encode", encode_key)
        covering = None if len(done) == info["shards"] else catalog.covering_encode(parts, info["shards"])
        if covering:
            encode_key, done = covering, set(range(info["shards"]))
            logger.info(f"encode: stored features {encode_key[:12]} cover {sorted(needs)} (same crops); no image encode")
        todo = sorted(set(range(info["shards"])) - done)
        if len(todo) < info["shards"]:
            logger.info(f"encode: {info['shards'] - len(todo)}/{info['shards']} shard(s) already stored, skipped")
        needs_list = sorted(needs)
        shard_inputs = encode_inputs(catalog, info, encode_key, attention_key, text_key, needs_list) if todo else None

        sizes = catalog.shard_sizes(dataset)
        finished_images = sum(sizes.get(shard, 0) for shard in range(info["shards"]) if shard not in todo)

        def encoded(shard: int) -> None:
            nonlocal encoded_shards, finished_images
            encoded_shards += 1
            finished_images += sizes.get(shard, 0)
            logger.info(f"encode: shard {shard + 1}/{info['shards']} done")
            reach(bar, finished_images)  # images ticked inside the shard (in this process), or the whole shard at once (Dask)

        with stage_bar(sum(sizes.values()), "encode", unit="image", initial=finished_images) as bar:
            run_shards("encode", todo, encode_compute_task,
                       lambda shard: {**shard_inputs(shard),
                                      "backbone_model": model, "needs": needs_list, "configs": config_dicts, "batch_size": batch_size,
                                      "compile": compile},
                       lambda shard, result: register_encode(catalog, dataset, shard, encode_key, model, needs_list, attention_key, parts, result),
                       encoded)

    # 5. scores, per shard: one shard's features in memory at a time; DuckDB computes accuracy
    method_configs = {r.spec.name: config_to_dict(r.config) for r in runs}
    run_id = content_key("run", dataset, info["fingerprint"], model_key, attention_model_key, method_configs, text_key)[:12]
    params = dict(dataset=dataset, model=model, methods=[r.spec.name for r in runs], attention_model=attention_model,
                  presets=presets, n_crops=n_crops, text_dataset=text_dataset, lenient_descriptions=lenient_descriptions,
                  batch_size=batch_size, overrides=overrides, extra_needs=extra_needs, compile=compile, score_memory=score_memory)
    catalog.start_run(run_id, dataset, model, str(attention_model), [r.spec.name for r in runs], method_configs, text_key, set_id, params, encode_key)
    with progress(total=info["shards"], desc="score", unit="shard") as bar:
        accuracy = score_stage(catalog, info, run_id, method_configs, encode_key, text_key, memory,
                               on_done=lambda shard: (logger.info(f"score: shard {shard + 1}/{info['shards']} done"), bar.update(1)),
                               on_skipped=lambda done: (logger.info(f"score: {done}/{info['shards']} shard(s) already stored, skipped"), bar.update(done)))
    print(format_accuracy(run_id, accuracy))
    return {"run_id": run_id, "description_set": set_id, "accuracy": {m: top1 for _, m, _, _, top1 in accuracy}, "encode_key": encode_key, "text_key": text_key,
            "encoded_shards": encoded_shards}


def score_stage(catalog: Catalog, info: dict, run_id: str, method_configs: dict[str, dict], encode_key: str, text_key: str, memory: int,
                compute=score_compute_task, on_done=lambda shard: None, on_skipped=lambda done: None) -> list[tuple]:
    """Stage 5 of one run: score the shards not yet stored (on the flow's Dask cluster when it
    has one), then load every shard's predictions into the catalog in one bulk insert and compute
    accuracy there. The key covers the run (dataset content, models, methods, configs, sentences)
    and the features, so a rerun scores only missing shards. -> accuracy rows."""
    score_key = content_key("score", run_id, encode_key)
    todo = sorted(set(range(info["shards"])) - catalog.finished_shards("score", score_key))
    if len(todo) < info["shards"]:
        on_skipped(info["shards"] - len(todo))
    shard_inputs = score_inputs(catalog, info, score_key, encode_key, text_key) if todo else None
    run_shards("score", todo, compute, lambda shard: {**shard_inputs(shard), "run_id": run_id, "configs": method_configs, "memory": memory},
               lambda shard, result: register_score(catalog, run_id, shard, score_key, result), on_done)
    paths = [path for _, path in sorted(catalog.artifact_paths("score", score_key).items())]
    return catalog.store_predictions(run_id, paths, list(method_configs))


def format_accuracy(run_id: str, accuracy: list[tuple]) -> str:
    lines = [f"run {run_id}", f"{'method':8s} {'images':>6s} {'top-1':>7s}"]
    lines += [f"{method:8s} {n:6d} {100 * top1:6.2f}%" for _, method, _, n, top1 in accuracy]
    return "\n".join(lines)
