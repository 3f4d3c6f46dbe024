"""``glocal demo``: the whole pipeline (ingest, text embedding, attention, crop-and-encode,
scoring) through Prefect and DuckDB, offline, with tiny random models unless given real ones."""

from __future__ import annotations

from pathlib import Path

from glocal.run.demo import resolve_models
from glocal.data.demo_data import SHARED_SAMPLE, generate_images
from glocal.paths import read_json, text_data
from glocal.run.request import RunRequest
from glocal.run.plan import resolve_methods


def demo_pipeline(images: str | None = None, model: str | None = None, attention_model: str | None = None,
                  methods: list[str] | None = None, limit: int = 40, n_crops: int | None = None,
                  workdir: Path = Path("glocal-demo"), score_memory: str | int | None = None) -> dict:
    from flows.evaluate import evaluate
    from flows import tell
    from tasks.ingest import ingest_folder

    methods = methods or []
    resolve_methods(methods)  # unknown names fail here, before any compute
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(images) if images else (SHARED_SAMPLE if SHARED_SAMPLE.exists() else generate_images(workdir / "generated"))
    sample = root.resolve() == SHARED_SAMPLE.resolve()
    classnames = read_json(text_data("classnames/imagenet.json")) if sample else None
    dataset = "imagenet-sample" if sample else root.name
    model, attention_model = resolve_models(workdir, model, attention_model)
    db = str(workdir / "glocal.duckdb")
    tell(f"images: {root}; workspace: {db}")
    report = ingest_folder(db, dataset, str(root), shard_size=16, classnames=classnames, limit=limit)
    tell(f"ingested {report['images']} images in {report['shards']} shard(s)")
    for image_id, reason in report["bad"]:
        tell(f"skipped {image_id}: {reason}")
    result = evaluate(request=RunRequest(dataset=dataset, model=model, methods=tuple(methods), attention_model=attention_model,
                                         n_crops=n_crops, text_dataset="imagenet" if sample else None, score_memory=score_memory), db=db)
    if model.startswith(str(workdir)):
        tell("accuracy is at chance with tiny random models (pass --model for real weights)")
    tell(f'query it: glocal sql --db {db} "SELECT method, 100 * avg(correct::INT) AS top1_pct FROM predictions GROUP BY method"')
    return {**result, "db": db, "dataset": dataset, "ingest": report}
