"""The reproduce flow: one of the ABS paper's tables (1, 2 or 8) on the datasets a data root
holds, with every backbone it names, next to the published numbers.

Each (dataset, backbone) cell is an ordinary evaluate run of the table's methods, so a rerun skips
finished work and every score is in the catalog; the table itself is stored in ``reproductions`` /
``reproduction_cells`` (published values beside run ids, joinable with ``accuracy``)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from flows.evaluate import evaluate
from glocal.config import DEFAULT_PRESET, OFFICIAL_PRESET, content_key, get_preset
from glocal.data.datasets import LAYOUTS, Benchmark, find_dataset_folder, read_benchmark
from glocal.published import PublishedTable, comparison_rows, formatted, published
from glocal.run.request import RunRequest
from glocal.methods import method_names
from flows import log_table, tell
from storage import Catalog
from storage.held import holding_workspaces
from tasks.ingest import ingest_benchmark

# the checkpoints the paper used, by the column labels of its tables (override with backbones=)
DEFAULT_BACKBONES = {
    "B/32": "openai/clip-vit-base-patch32",
    "B/16": "openai/clip-vit-base-patch16",
    "L/14": "openai/clip-vit-large-patch14",
    "ALIGN": "kakaobrain/align-base",
    "AltCLIP": "BAAI/AltCLIP",
    "GroupViT": "nvidia/groupvit-gcc-yfcc",
}
REPRODUCIBLE_TABLES = ("1", "2", "8")
# Which form of each method a reproduction runs: "official" = what the published numbers measured
# (the ABS code, and WCA's for the baselines), "glocal" = each method's default preset.
FORMS = {"official": OFFICIAL_PRESET, "glocal": DEFAULT_PRESET}
# WCA's official configs keep a pool of 60 crops on ImageNet and 100 on every other dataset
OFFICIAL_WCA_POOL = {"imagenet": 60}
OTHER_WCA_POOL = 100
# BLIP-2's retrieval model scores an image as the best of 32 Q-Former query embeddings against the
# text, not one embedding per image, so it does not fit the backbone contract (one (D,) feature per
# view) that every method is written against
NOT_REPRODUCIBLE = {
    "3": "Table 3 compares with fine-tuned and test-time-adapted methods glocal does not run",
    "10": "Table 10 needs BLIP-2 (Blip2ForImageTextRetrieval), which has no glocal adapter: its image side is 32 "
          "Q-Former query embeddings scored by their best match, not the one feature per view the methods take",
}


def cell_forms(methods: list[str], forms: str, dataset: str, n_crops: int | None) -> tuple[dict, dict, dict]:
    """(presets, overrides, label per method) for one dataset's cell: the form's preset of each
    method, WCA's official pool for the dataset (unless --n-crops sets every pool), and the
    label the printout and the report show beside each measured number."""
    presets = {m: FORMS[forms][m] for m in methods if m in FORMS[forms]}
    overrides, labels = {}, {m: presets.get(m, "standard") for m in methods}
    wca = get_preset(presets["wca"]) if "wca" in presets else None
    if wca is not None and wca.draws > 1:
        pool = n_crops or (OFFICIAL_WCA_POOL.get(dataset, OTHER_WCA_POOL) if forms == "official" else wca.n_crops)
        overrides["wca"] = {"n_crops": pool}
        labels["wca"] += f" (pool {pool}, {wca.draws} draws of {wca.draw_size})"
    return presets, overrides, labels


@dataclass
class Plan:
    table: PublishedTable
    backbones: dict[str, str]  # column label -> hub id or dir
    methods: list[str]
    present: dict[str, tuple[str, Benchmark]]  # dataset -> (its folder, its records read once)
    notes: list[str]


def plan_reproduction(table: str, data_root: str, backbones: dict[str, str | None] | None, methods: list[str] | None,
                      attention_model: str | None) -> Plan:
    """Everything checked before any compute: the table, the backbones it names, the methods, and
    each present dataset's layout (a malformed one fails here, naming its file)."""
    if str(table) not in REPRODUCIBLE_TABLES:
        why = NOT_REPRODUCIBLE.get(str(table), "no such table")
        raise ValueError(f"table {table!r} cannot be reproduced ({why}); choose from {', '.join(REPRODUCIBLE_TABLES)}")
    pub = published(table)
    chosen = dict(backbones or {label: None for label in pub.backbones})
    unknown = [b for b in chosen if b not in pub.backbones]
    if unknown:
        raise ValueError(f"table {table} has no backbone column {unknown}; its backbones: {', '.join(pub.backbones)} "
                         "(give LABEL or LABEL=hub-id-or-dir)")
    resolved = {label: model or DEFAULT_BACKBONES[label] for label, model in chosen.items()}
    notes = [f"{label}: measured with {model}, not the table's checkpoint {DEFAULT_BACKBONES[label]}: the differences include the weights"
             for label, model in resolved.items() if model != DEFAULT_BACKBONES[label]]
    runnable = [m for m in pub.methods if m in method_names()]
    methods = list(methods or runnable)
    bad = [m for m in methods if m not in runnable]
    if bad:
        raise ValueError(f"table {table} has no row for method(s) {bad}; its methods: {', '.join(runnable)}")
    if "abs" in methods and not attention_model:
        raise ValueError("ABS needs --attention-model (a DINO/DINOv2 hub id or dir; the paper uses DINO ViT-B/16)")
    present = {}
    for dataset in pub.datasets:
        if dataset == "average":
            continue
        folder = find_dataset_folder(data_root, dataset)
        if folder is None:
            notes.append(f"{dataset}: skipped, not found under {data_root} (looked for {', '.join(LAYOUTS[dataset].folders)})")
            continue
        present[dataset] = (str(folder), read_benchmark(dataset, folder))  # the layout is valid before any model loads
    if not present:
        raise ValueError(f"{data_root}: none of table {table}'s datasets is present; " + "; ".join(notes))
    return Plan(pub, resolved, methods, present, notes)


@flow(name="reproduce", log_prints=True)
def reproduce(
    table: str,
    data_root: str,
    db: str = "glocal.duckdb",
    backbones: dict[str, str | None] | None = None,
    methods: list[str] | None = None,
    attention_model: str | None = None,
    limit: int | None = None,
    n_crops: int | None = None,
    batch_size: int = 64,
    shard_size: int = 256,
    reingest: bool = False,
    score_memory: str | int | None = None,
    forms: str = "official",
) -> dict:
    """Run ``table``'s protocol on the datasets under ``data_root``. ``backbones``: column label ->
    model (None: the paper's checkpoint); default every backbone of the table. ``limit``: an evenly
    spaced sample of that many test images per dataset (a quick look; the published numbers use
    the full test sets). ``forms``: "official" runs each method as the published numbers measured it
    (``OFFICIAL_PRESET``), "glocal" its default preset; every cell records the form it ran.
    Returns the reproduction id, the cells and the printed comparison."""
    with holding_workspaces():  # the workspace file stays open through each burst of bookkeeping (storage.held)
        if forms not in FORMS:
            raise ValueError(f"unknown forms {forms!r}; choose from {', '.join(FORMS)}")
        plan = plan_reproduction(table, data_root, backbones, methods, attention_model)
        for note in plan.notes:
            tell(f"note: {note}")
        catalog = Catalog(db)
        cells = []
        for dataset, (folder, bench) in plan.present.items():
            name = f"{dataset}-n{limit}" if limit else dataset
            if reingest or _needs_ingest(catalog, name, folder):
                report = ingest_benchmark(db, name, folder, bench, shard_size=shard_size, limit=limit)
                tell(f"{dataset}: ingested {report['images']} images ({len(report['bad'])} bad) from {folder}")
            presets, overrides, labels = cell_forms(plan.methods, forms, dataset, n_crops)
            for label, model in plan.backbones.items():
                cell = RunRequest(dataset=name, model=model, methods=tuple(plan.methods), attention_model=attention_model,
                                  text_dataset=bench.text_dataset, n_crops=n_crops, batch_size=batch_size, lenient_descriptions=True,
                                  score_memory=score_memory, presets=presets, overrides=overrides)
                result = evaluate(request=cell, db=db)
                cells += [(dataset, label, m, result["run_id"], plan.table.values.get((dataset, label, m)), labels[m]) for m in plan.methods]
        repro_id = "repro-" + content_key("reproduce", table, data_root, plan.backbones, plan.methods, attention_model, limit, n_crops, forms)[:10]
        spec = {"data_root": data_root, "backbones": plan.backbones, "methods": plan.methods, "attention_model": attention_model,
                "limit": limit, "n_crops": n_crops, "forms": forms, "source": plan.table.source}
        catalog.store_reproduction(repro_id, str(table), spec, plan.notes, cells)
        comparison = catalog.reproduction(repro_id)
        text = format_reproduction(comparison)
        log_table(text)
        return {"repro_id": repro_id, "cells": comparison["cells"], "notes": plan.notes, "table": text}


def _needs_ingest(catalog: Catalog, name: str, folder: str) -> bool:
    try:
        return catalog.dataset(name)["root"] != folder
    except ValueError:
        return True


def format_reproduction(comparison: dict) -> str:
    """The printed comparison: one line per cell, the measured top-1 with its ± std over draws
    where the form has draws, and the form each cell ran."""
    lines = [f"reproduction {comparison['repro_id']}: table {comparison['table']} ({comparison['source']})",
             f"{'dataset':16s} {'backbone':9s} {'method':8s} {'images':>6s} {'measured':>12s} {'published':>9s} {'diff':>7s}  form"]
    for c in comparison_rows(comparison):
        images, measured, pub, diff = formatted(c)
        lines.append(f"{c['dataset']:16s} {c['backbone']:9s} {c['method']:8s} {images:>6s} {measured:>12s} {pub:>9s} {diff:>7s}  {c.get('form') or ''}".rstrip())
    lines += [f"note: {n}" for n in comparison["notes"]]
    return "\n".join(lines)
