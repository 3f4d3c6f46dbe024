"""Stage 5: every requested method from stored features and text embeddings -> predictions,
top-5 and accuracy in DuckDB. Re-scoring never re-encodes images."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from glocal.config import config_hash
from glocal.scoring import restrict_classes, runs_from_configs, score_all
from storage import Catalog
from tasks.embed_text import load_text_bank
from tasks.encode import load_features


def score_run(db: str, run_id: str, dataset: str, encode_key: str, text_key: str, configs: dict[str, dict]) -> list[tuple]:
    catalog = Catalog(db)
    info = catalog.dataset(dataset)
    classnames, subset = info["classnames"], info["class_subset"]
    labels = {image_id: label for image_id, _, label in catalog.manifest(dataset)}
    runs = runs_from_configs(configs)
    bank = load_text_bank(db, text_key, classnames)
    ids, features = load_features(db, encode_key, bank.dim)
    scores = score_all(runs, features, bank)
    rows, accuracy = [], []
    k = min(5, len(subset or classnames))
    for run in runs:
        s = restrict_classes(scores[run.spec.name], subset)
        top = s.topk(k, dim=1)
        preset = config_hash(run.config)
        correct_count = 0
        for i, image_id in enumerate(ids):
            prediction = int(top.indices[i, 0])
            correct = prediction == labels[image_id]
            correct_count += correct
            rows.append((run_id, run.spec.name, preset, image_id, labels[image_id], prediction, correct,
                         top.indices[i].tolist(), [round(float(v), 6) for v in top.values[i]]))
        accuracy.append((run_id, run.spec.name, preset, len(ids), correct_count / max(len(ids), 1)))
    catalog.store_predictions(run_id, rows, accuracy)
    return accuracy


score_task = task(score_run, name="score", cache_policy=NONE)
