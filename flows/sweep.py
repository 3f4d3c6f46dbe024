"""The sweep flow: one method, one parameter, several values -- the ABS paper's Figure 4 (N, alpha,
k) and Table 7 (layer L), or its Table 4 ablations as a sweep over presets. Every point is an
evaluate run. Points whose configs differ only in scoring fields (config fields marked ``scoring(...)``: the
Frs/Ffs/Soft-M switches, M, temperatures, WCA weights) share one encode that covers the union of
their feature kinds, so only the first of them encodes images; the baselines reuse it too."""

from __future__ import annotations

from prefect import flow

from flows.evaluate import evaluate
from glocal.config import content_key, feature_fields
from glocal.run.request import RunRequest
from glocal.methods import get_method, methods_with_parameters
from glocal.run.plan import build_runs
from flows import log_table
from storage import Catalog
from storage.held import holding_workspaces


def sweep_points(method: str, param: str, values: list, preset: str | None, n_crops: int | None) -> list[tuple]:
    """(value, presets, overrides, run) per value, every config built (and validated) up front."""
    spec = get_method(method)
    if spec.config_cls is None:
        raise ValueError(f"method {method!r} has no parameters to sweep; methods with parameters: {', '.join(methods_with_parameters())}")
    if not values:
        raise ValueError("a sweep needs at least one value")
    if param == "n_crops" and n_crops is not None:
        raise ValueError("n_crops is the swept parameter; leave --n-crops out")
    points = []
    for value in values:
        presets = {method: value} if param == "preset" else ({method: preset} if preset else None)
        overrides = None if param == "preset" else {method: {param: value}}
        points.append((value, presets, overrides, build_runs([method], presets, n_crops, overrides)[0]))
    return points


@flow(name="sweep", log_prints=True)
def sweep(method: str, param: str, values: list, request: RunRequest | None = None, db: str = "glocal.duckdb",
          preset: str | None = None, baselines: list[str] | None = None, **fields) -> dict:
    """Score ``method`` with ``param`` set to each of ``values`` (``param="preset"``: values are
    preset names), plus ``baselines`` (methods scored once, e.g. clip_d and cupl as in Figure 4).
    ``request``: what every point shares (dataset, models, text, engine and cluster options; or
    its fields as keywords); each point is that request with its own presets, overrides and crop
    kinds. Stored as a sweep in the catalog (tables ``sweeps``, ``sweep_points``); returns its id,
    the points with accuracy, and a printed table. A rerun skips every finished stage."""
    with holding_workspaces():  # the workspace file stays open through each burst of bookkeeping (storage.held)
        base = request if request is not None else RunRequest.of(methods=(method,), **fields)
        points = sweep_points(method, param, values, preset, base.n_crops)
        union: dict[str, set[str]] = {}
        for _, _, _, run in points:
            union.setdefault(content_key(feature_fields(run.config)), set()).update(run.spec.image_needs_for(run.config))
        # the sweep's identity: what its points share, not where or how fast they ran
        common = dict(dataset=base.dataset, model=base.model, db=db, attention_model=base.attention_model, n_crops=base.n_crops,
                      text_dataset=base.text_dataset, descriptions=base.descriptions, description_set=base.description_set,
                      lenient_descriptions=base.lenient_descriptions, batch_size=base.batch_size)
        rows = []
        for position, (value, presets, overrides, run) in enumerate(points):
            needs = union[content_key(feature_fields(run.config))]
            point = base.replace(methods=(method,), presets=presets, overrides=overrides, extra_needs=tuple(sorted(needs)))
            result = evaluate(request=point, db=db)
            rows.append((position, "point", method, value, result["run_id"], result["encoded_shards"], result["accuracy"][method]))
        if baselines:
            result = evaluate(request=base.replace(methods=tuple(baselines), presets=None, overrides=None, extra_needs=None), db=db)
            rows += [(len(rows) + i, "baseline", m, None, result["run_id"], result["encoded_shards"] if i == 0 else 0, result["accuracy"][m])
                     for i, m in enumerate(baselines)]
        sweep_id = "sweep-" + content_key("sweep", common, method, param, values, preset, baselines)[:10]
        Catalog(db).store_sweep(sweep_id, base.dataset, base.model, method, param,
                                {"values": values, "preset": preset, "baselines": baselines, **common}, [r[:6] for r in rows])
        table = format_sweep(sweep_id, param, rows)
        over_seeds = None
        if param == "seed":  # a seed sweep: the method's mean and std over its seeds (glocal.results.seeds)
            from glocal.results.seeds import summarise

            points = [r for r in rows if r[1] == "point"]
            over_seeds = dict(zip(("method", "seeds", "top1_pct_mean", "top1_pct_std"),
                                  summarise([r[3] for r in points], [{method: 100 * r[6]} for r in points], {method: True})[0][:4]))
            table += f"\n{method} over {over_seeds['seeds']} seeds: top1_pct {over_seeds['top1_pct_mean']:.2f} ± {over_seeds['top1_pct_std']:.2f}"
        log_table(table)
        return {"sweep_id": sweep_id, "points": [dict(zip(("position", "role", "method", "value", "run_id", "encoded_shards", "top1"), r)) for r in rows],
                "table": table, "over_seeds": over_seeds}


def format_sweep(sweep_id: str, param: str, rows: list[tuple]) -> str:
    lines = [f"sweep {sweep_id}", f"{param:>14s} {'method':8s} {'run':12s} {'encoded':>7s} {'top1_pct':>8s}"]
    for _, role, method, value, run_id, encoded, top1 in rows:
        shown = "(baseline)" if role == "baseline" else str(value)
        lines.append(f"{shown:>14s} {method:8s} {run_id:12s} {encoded:7d} {100 * top1:8.2f}")
    return "\n".join(lines)
