"""The evaluate flow: dataset x backbone x methods x presets -> text embeddings, attention maps,
crop features, scores. Every stage unit is keyed by content and skipped when the catalog already
has it, so a rerun does no finished work and a killed run resumes where it stopped."""

from __future__ import annotations

import json

from prefect import flow, get_run_logger

from glocal.config import config_to_dict, content_key
from glocal.demo_data import SHARED_DATA, text_inputs
from glocal.scoring import configs_by_type, image_needs, resolve_methods, text_needs, with_crops
from glocal.text import LENIENT, DescriptionPolicy, align_descriptions, clip_d_sentences, load_descriptions, load_waffle_words, prompt_sentences, template_sentences, waffle_sentences
from storage import Catalog
from tasks.attention import attention_task
from tasks.embed_text import embed_text_task
from tasks.encode import encode_task
from tasks.score import score_task


def sentence_sets(classnames: list[str], needed: set[str], text_dataset: str | None, descriptions: str | None,
                  lenient: bool = False, waffle_seed: int = 1) -> tuple[dict, list[str]]:
    """Every sentence set the methods need, aligned to the classes (errors raised here, before
    any compute). A user's description file is aligned strictly (only same-named classes share);
    ``lenient`` falls back to the class name for missing or empty entries, and reports it."""
    texts = text_inputs(text_dataset or "", classnames)
    notes = list(texts.notes)
    if descriptions:
        policy = LENIENT if lenient else DescriptionPolicy(on_duplicate="share")
        texts.descriptions, report = align_descriptions(classnames, load_descriptions(descriptions), policy, source=descriptions)
        notes = [f"cupl: {line}" for line in report.lines()]
    sets: dict = {"classnames": classnames}
    if "prompts" in needed:
        sets["prompts"] = prompt_sentences(classnames)
    if "templates" in needed:
        sets["templates"] = template_sentences(classnames, texts.templates)
    if "descriptions" in needed:
        sets["descriptions"] = texts.descriptions
    if "clip_d" in needed:
        sets["clip_d"] = clip_d_sentences(classnames, texts.clip_d)
    if "waffle" in needed:
        path = SHARED_DATA / "waffle_words.json"
        words = load_waffle_words(path) if path.exists() else ["alpha", "bravo", "charlie", "delta"]
        sets["waffle"] = waffle_sentences(classnames, [len(d) for d in texts.clip_d], words, waffle_seed)
    return sets, notes


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
) -> dict:
    logger = get_run_logger()
    runs = resolve_methods(methods, presets)  # unknown methods / presets fail before any compute
    if n_crops is not None:
        runs = [with_crops(r, n_crops) for r in runs]
    catalog = Catalog(db)
    info = catalog.dataset(dataset)
    classnames = info["classnames"]
    sets, notes = sentence_sets(classnames, text_needs(runs), text_dataset, descriptions, lenient_descriptions)
    for note in notes:
        logger.info(note)
    needs = image_needs(runs)
    configs = configs_by_type(runs)
    if needs & {"raw", "feat"} and configs["abs_config"].attention == "dino" and not attention_model:
        raise ValueError("ABS with DINO attention needs --attention-model (a DINO/DINOv2 id or dir)")

    # 2. text embeddings, keyed by backbone + the exact sentences
    text_key = content_key("text", model, sets)
    sentences_path = catalog.artifact_root / "sentences" / f"{text_key}.json"
    sentences_path.parent.mkdir(parents=True, exist_ok=True)
    sentences_path.write_text(json.dumps(sets))
    embed_text_task(db, text_key, str(sentences_path), model)

    # 3. attention maps, per shard
    attention_key = None
    if needs & {"raw", "feat"}:
        kind = configs["abs_config"].attention
        attention_key = content_key("attention", dataset, kind, attention_model if kind == "dino" else None, model if kind == "clip" else None)
        done = catalog.finished_shards("attention", attention_key)
        for shard in range(info["shards"]):
            if shard in done:
                continue
            attention_task(db, dataset, shard, attention_key, kind, attention_model, model)
            logger.info(f"attention: shard {shard + 1}/{info['shards']} done")

    # 4. crop-and-encode, per shard
    config_dicts = {name: {k: v for k, v in config_to_dict(cfg).items() if k != "type"} for name, cfg in configs.items()}
    encode_key = content_key("encode", dataset, model, sorted(needs), config_dicts, attention_key, text_key if "lgca" in needs else None)
    done = catalog.finished_shards("encode", encode_key)
    for shard in range(info["shards"]):
        if shard in done:
            logger.info(f"encode: shard {shard + 1}/{info['shards']} already stored, skipped")
            continue
        encode_task(db, dataset, shard, encode_key, model, sorted(needs), config_dicts, attention_key, text_key, batch_size)
        logger.info(f"encode: shard {shard + 1}/{info['shards']} done")

    # 5. scores
    method_configs = {r.spec.name: config_to_dict(r.config) for r in runs}
    run_id = content_key("run", dataset, model, attention_model, method_configs, text_key)[:12]
    catalog.start_run(run_id, dataset, model, str(attention_model), [r.spec.name for r in runs], method_configs, text_key)
    accuracy = score_task(db, run_id, dataset, encode_key, text_key, method_configs)
    print(format_accuracy(run_id, accuracy))
    return {"run_id": run_id, "accuracy": {m: top1 for _, m, _, _, top1 in accuracy}, "encode_key": encode_key, "text_key": text_key}


def format_accuracy(run_id: str, accuracy: list[tuple]) -> str:
    lines = [f"run {run_id}", f"{'method':8s} {'images':>6s} {'top-1':>7s}"]
    lines += [f"{method:8s} {n:6d} {100 * top1:6.2f}%" for _, method, _, n, top1 in accuracy]
    return "\n".join(lines)
