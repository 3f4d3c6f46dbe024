"""Results as CLIP_benchmark writes them: one JSON file per (dataset, model, method), in the schema
of its ``clip_benchmark eval --output`` (``{"dataset", "model", "pretrained", "task", "metrics":
{"acc1", "acc5", "mean_per_class_recall"}, "language"}``, metrics as fractions), so that
``clip_benchmark build DIR`` makes its one CSV of them and leaderboard scripts read them.

Where glocal puts what CLIP_benchmark has no field for: the **method goes into ``model``**
(``"<model> <method>"``, with what the run set for it: ``"openai/clip-vit-base-patch16
abs[preset=abs-code,n_crops=60]"``), because ``build`` names a row by ``model + " " + pretrained`` and two methods of
one model must not collide; ``task`` stays ``"zeroshot_classification"`` (the scripts filter on
it); ``pretrained`` holds the weights' identity (the hub commit or the directory's content hash,
as glocal keys them). glocal's own fields ride along and become extra CSV columns: ``method``,
``setting``, ``glocal_run_id``, ``images``, ``acc1_std`` (WCA's draws).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TASK = "zeroshot_classification"
LANGUAGE = "en"


def result_record(*, dataset: str, model: str, pretrained: str | None, method: str, setting: dict[str, str], run_id: str, images: int,
                  top1_pct: float, top5_pct: float | None, recall_pct: float | None, top1_std_pct: float | None = None) -> dict:
    """One CLIP_benchmark result object (metrics in [0, 1], as its ``acc1``). ``setting``: what the
    run set for the method (``glocal.results.labels.method_setting``)."""
    shown = ",".join(f"{field}={value}" for field, value in setting.items())
    label = f"{method}[{shown}]" if shown else method
    return {
        "dataset": dataset,
        "model": f"{model} {label}",
        "pretrained": pretrained or "",
        "task": TASK,
        "metrics": {"acc1": _fraction(top1_pct), "acc5": _fraction(top5_pct), "mean_per_class_recall": _fraction(recall_pct)},
        "language": LANGUAGE,
        "method": method,
        "setting": shown,
        "glocal_run_id": run_id,
        "images": images,
        "acc1_std": _fraction(top1_std_pct),
    }


def file_name(record: dict) -> str:
    """CLIP_benchmark's default ``{dataset}_{pretrained}_{model}_{language}_{task}.json``, with the
    method for the model and every character outside [A-Za-z0-9._-] made '_' (no path from a name)."""
    parts = (record["dataset"], record["model"], record["language"], record["task"])
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "x" for part in parts) + ".json"


def _fraction(pct: float | None) -> float | None:
    return None if pct is None else round(pct / 100, 6)


def write_results(records: list[dict], folder) -> list[str]:
    """One file per record in ``folder`` (created); a name two records share gets ``-2``, ``-3``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written, taken = [], set()
    for record in records:
        name = file_name(record)
        stem, n = name[: -len(".json")], 2
        while name in taken:
            name, n = f"{stem}-{n}.json", n + 1
        taken.add(name)
        (out / name).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        written.append(str(out / name))
    return written


def records_from_rows(rows: list[dict]) -> list[dict]:
    """``storage``'s ``result_rows`` -> result objects."""
    from glocal.results.labels import method_setting

    return [result_record(dataset=r["dataset"], model=r["backbone"], pretrained=r["model_identity"], method=r["method"],
                          setting=method_setting(r["params"], r["method"]), run_id=r["run_id"], images=r["images"],
                          top1_pct=r["top1_pct"], top5_pct=r["top5_pct"], recall_pct=r["mean_per_class_recall_pct"],
                          top1_std_pct=r["top1_std_pct"]) for r in rows]
