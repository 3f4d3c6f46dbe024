"""``glocal report RUN...``: one self-contained HTML file (images embedded as PNG data URIs, no
network needed to view it) with the accuracy table (method x dataset/backbone, the ABS paper's
Table 1/2 shape) and its bar plot, the ablation table when the runs are ABS ablations (Table 4
shape), each sweep among the runs as a table and a plot (Figure 4 / Table 7), paired comparisons
against CLIP, per-class accuracy (best and worst classes), and a gallery: each image with its
attention map, raw-space boxes and feature-space windows, and the true and predicted class per
method; and each reproduction among the runs as measured vs published numbers."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from glocal.results.plots import HEAT_MAP, accuracy_bars, colour_scale, sweep_plot
from glocal.published import comparison_rows, formatted
from glocal.data.shards import iter_shard
from glocal.results.stats import compare_paired
from storage import Catalog, read_artifact

THUMB = 224  # gallery picture side
GALLERY = 6  # images per gallery, however the report is asked for (`glocal report`, `sweep --report`, `reproduce --report`)
MIN_CLASS_IMAGES = 5  # a class's accuracy is shown from this many images up


def _png_bytes(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return _png_bytes(buffer.getvalue())


def _table(headers: list[str], rows: list[list], cls: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fit(image: Image.Image) -> tuple[Image.Image, float]:
    scale = THUMB / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR), scale


TOP_CROPS = 5  # raw crops drawn per image, numbered (every crop is one click away)
# distinct, legend-matched colours for crops 1..TOP_CROPS (and their feature windows)
CROP_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
HEX = ["#%02x%02x%02x" % c for c in CROP_COLOURS]


def attention_picture(image: Image.Image, attention: np.ndarray | None) -> Image.Image:
    """The photo in grey under the attention map as a colour-mapped heatmap (``plots.HEAT_MAP``,
    the scale the gallery shows): readable on subjects of any colour, red ones included."""
    thumb, _ = _fit(image)
    if attention is None:
        return thumb
    a = attention - attention.min()
    a = a / a.max() if a.max() > 0 else a
    cells = Image.fromarray((a * 255).astype(np.uint8)).resize(thumb.size, Image.BILINEAR)
    heat = matplotlib.colormaps[HEAT_MAP](np.asarray(cells) / 255.0)[..., :3]
    grey = np.asarray(thumb.convert("L").convert("RGB"), dtype=np.float64) / 255.0
    return Image.fromarray((255 * (0.4 * grey + 0.6 * heat)).astype(np.uint8))


def top_crops(raw_boxes: np.ndarray, attention: np.ndarray | None, width: int, height: int, k: int = TOP_CROPS) -> list[int]:
    """Indices of up to ``k`` distinct raw boxes, most attended centre first (the attention map
    stretched over the image, as DINO sees it); in drawing order without a map."""
    seen, distinct = set(), []
    for i, box in enumerate(raw_boxes.tolist()):
        if tuple(box) not in seen:
            seen.add(tuple(box))
            distinct.append(i)
    if attention is None:
        return distinct[:k]
    g = attention.shape[0]

    def centre_value(i: int) -> float:
        x0, y0, x1, y1 = raw_boxes[i]
        row = min(g - 1, int((y0 + y1) / 2 * g / height))
        col = min(g - 1, int((x0 + x1) / 2 * g / width))
        return float(attention[row, col])

    return sorted(distinct, key=lambda i: -centre_value(i))[:k]


def _numbered(draw: ImageDraw.ImageDraw, box: list[float], number: int) -> None:
    colour = CROP_COLOURS[(number - 1) % len(CROP_COLOURS)]
    draw.rectangle(box, outline=colour, width=3)
    draw.rectangle([box[0], box[1], box[0] + 11, box[1] + 12], fill=colour)
    draw.text((box[0] + 3, box[1]), str(number), fill=(255, 255, 255))


def crops_picture(image: Image.Image, raw_boxes: np.ndarray, picked: list[int]) -> Image.Image:
    """The picked raw-space crops, numbered in the legend's colours."""
    thumb, scale = _fit(image)
    draw = ImageDraw.Draw(thumb)
    for number, i in enumerate(picked, 1):
        x0, y0, x1, y1 = raw_boxes[i]
        _numbered(draw, [x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], number)
    return thumb


def all_crops_picture(image: Image.Image, raw_boxes: np.ndarray) -> Image.Image:
    """Every raw-space crop, thin outlines (shown on demand: sixty boxes hide the photo)."""
    thumb, scale = _fit(image)
    draw = ImageDraw.Draw(thumb)
    for x0, y0, x1, y1 in raw_boxes:
        draw.rectangle([x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=(255, 220, 0))
    return thumb


def windows_picture(image: Image.Image, windows: np.ndarray, grid: int, picked: list[int]) -> Image.Image:
    """The region CLIP's tokens cover (the centre square), its token grid faint, and the feature
    windows of the picked crops in the same colours and numbers."""
    side = min(image.size)
    ox, oy = (image.width - side) // 2, (image.height - side) // 2
    region = image.crop((ox, oy, ox + side, oy + side)).convert("RGB").resize((THUMB, THUMB), Image.BILINEAR)
    region = Image.blend(region, Image.new("RGB", region.size, (255, 255, 255)), 0.35)
    draw = ImageDraw.Draw(region)
    cell = THUMB / grid
    for k in range(1, grid):
        draw.line([(k * cell, 0), (k * cell, THUMB)], fill=(200, 200, 200))
        draw.line([(0, k * cell), (THUMB, k * cell)], fill=(200, 200, 200))
    for number, i in enumerate(picked, 1):
        if i < len(windows):
            x0, y0, x1, y1 = windows[i]
            _numbered(draw, [x0 * cell, y0 * cell, x1 * cell - 1, y1 * cell - 1], number)
    return region


def crop_legend(raw_boxes: np.ndarray, windows: np.ndarray | None, picked: list[int]) -> str:
    items = []
    for number, i in enumerate(picked, 1):
        x0, y0, x1, y1 = (int(v) for v in raw_boxes[i])
        window = f"; window cells {int(windows[i][2] - windows[i][0])}×{int(windows[i][3] - windows[i][1])}" if windows is not None and i < len(windows) else ""
        items.append(f'<li><span class="swatch" style="background:{HEX[(number - 1) % len(HEX)]}"></span>'
                     f"{number}: {x1 - x0}×{y1 - y0} px at ({x0}, {y0}){window}</li>")
    return '<ol class="legend">' + "".join(items) + "</ol>"


ABS_KINDS = {"raw", "feat"}  # the crop kinds whose boxes and windows (chosen by attention) the gallery draws


def crop_kinds_used(catalog: Catalog, run_id: str) -> set[str]:
    """The crop kinds the run's methods score (none for CLIP, CuPL, Waffle: whole images): a run
    that reused a stored encode holding other methods' crops draws none of them."""
    from glocal.run.plan import image_needs, runs_from_configs

    return set(image_needs(runs_from_configs(catalog.run_configs(run_id)))) - {"full"}


def _gallery(catalog: Catalog, info: dict, classnames: list[str], count: int, abs_crops: bool) -> tuple[str, int, bool, bool]:
    """(the gallery's HTML, its images, whether attention maps were drawn, whether crops were);
    ``abs_crops``: the run's methods score ABS's crops, so they and their attention are drawn."""
    if count <= 0 or not info.get("encode_key"):
        return "", 0, False, False
    dataset = catalog.dataset(info["dataset"])
    if info.get("fingerprint") != dataset["fingerprint"]:
        # the shards hold other pixels than the run scored (a re-ingest under the same name)
        why = ("changed since this run scored them (re-ingested)" if info.get("fingerprint")
               else "may have changed since this run scored them (it predates recorded fingerprints)")
        return (f'<p class="note">No gallery for run {html.escape(info["run_id"])}: the images of dataset {html.escape(info["dataset"])} '
                f"{why}, so its crops and predictions cannot be drawn on them; "
                "rerun `glocal evaluate` to score the images as they are now.</p>"), 0, False, False
    meta = catalog.artifact_meta("encode", info["encode_key"])
    encode_files, damaged, _ = catalog.checked_artifacts("encode", info["encode_key"])
    if damaged or (info["encode_key"], 0) not in encode_files:
        return (f'<p class="note">No gallery for run {html.escape(info["run_id"])}: its stored features are missing or damaged; '
                "rerun `glocal evaluate` to compute them again.</p>"), 0, False, False
    table = read_artifact(encode_files[(info["encode_key"], 0)])
    drawn = [c for c in ("raw_boxes", "windows") if c in table.column_names and abs_crops]  # ABS's raw crops and their windows
    encoded = table.select(["image_id", *drawn]).to_pydict()
    order = {image_id: i for i, image_id in enumerate(encoded["image_id"])}
    attention = {}
    attention_key = meta.get(0, {}).get("attention_key") if abs_crops else None  # maps only where they chose the crops
    attention_files = catalog.checked_artifacts("attention", attention_key)[0] if attention_key else {}
    if (attention_key, 0) in attention_files:
        table = read_artifact(attention_files[(attention_key, 0)]).to_pydict()
        attention = {i: np.asarray(a, dtype=np.float32).reshape(g, g) for i, a, g in zip(table["image_id"], table["attention"], table["grid"])}
    grid = meta.get(0, {}).get("grid")
    shard_file = Path(dataset["shard_dir"]) / "shard-00000.tar"
    samples = []
    for image_id, label, image in iter_shard(shard_file):
        if image_id in order:
            samples.append((image_id, label, image))
        if len(samples) == count:
            break
    predictions = catalog.predictions_of(info["run_id"], [s[0] for s in samples])
    cards = []
    for image_id, label, image in samples:
        row = order[image_id]
        raw = np.asarray(encoded["raw_boxes"][row]).reshape(-1, 4) if "raw_boxes" in encoded else None
        windows = np.asarray(encoded["windows"][row]).reshape(-1, 4) if "windows" in encoded else None
        heat = attention.get(image_id)
        lines = "".join(
            f'<li class="{"right" if predictions.get((image_id, m)) == label else "wrong"}">{html.escape(m)}: '
            f"{html.escape(classnames[predictions[(image_id, m)]])}</li>"
            for m in info["methods"] if (image_id, m) in predictions)
        pictures = [f'<img alt="{"attention" if heat is not None else "image"}" src="{_png(attention_picture(image, heat))}">']
        extra = ""
        if raw is not None and len(raw):
            picked = top_crops(raw, heat, image.width, image.height)
            pictures.append(f'<img alt="top crops" src="{_png(crops_picture(image, raw, picked))}">')
            if windows is not None and grid:
                pictures.append(f'<img alt="feature windows" src="{_png(windows_picture(image, windows, grid, picked))}">')
            extra = (crop_legend(raw, windows, picked) +
                     f'<details><summary>all {len(raw)} crops</summary><img alt="all crops" src="{_png(all_crops_picture(image, raw))}"></details>')
        cards.append(f'<figure class="card">{"".join(pictures)}'
                     f"<figcaption><b>{html.escape(image_id)}</b><br>true: {html.escape(classnames[label])}<ul>{lines}</ul>{extra}"
                     "</figcaption></figure>")
    return '<div class="gallery">' + "".join(cards) + "</div>", len(cards), bool(attention), "raw_boxes" in drawn


ABLATION_SWITCHES = ("use_raw", "use_feature", "soft_matching")  # Frs, Ffs, Soft-M


def ablation_table(catalog: Catalog, infos: list[dict], accuracy: dict) -> tuple[list[str], list[list]] | None:
    """The ABS paper's Table 4 shape when the runs hold ABS with at least two different
    Frs/Ffs/Soft-M switch settings: one row per setting (CuPL first, as the paper's baseline row),
    one column per dataset / backbone, and the mean gain over CuPL. The first run with a given
    setting and column is the one shown."""
    cells: dict[tuple, dict[str, float]] = {}
    columns: list[str] = []
    cupl: dict[str, float] = {}
    for info in infos:
        column = f"{info['dataset']} / {Path(info['backbone']).name}"
        if "cupl" in info["methods"] and (info["run_id"], "cupl") in accuracy:
            cupl.setdefault(column, accuracy[(info["run_id"], "cupl")][1])
        if "abs" not in info["methods"] or (info["run_id"], "abs") not in accuracy:
            continue
        config = catalog.run_configs(info["run_id"]).get("abs", {})
        flags = tuple(bool(config.get(name, True)) for name in ABLATION_SWITCHES)
        cells.setdefault(flags, {}).setdefault(column, accuracy[(info["run_id"], "abs")][1])
        if column not in columns:
            columns.append(column)
    if len(cells) < 2:
        return None
    mark = lambda on: "✓" if on else "-"
    rows = []
    if cupl:
        rows.append(["-", "-", "-", *(f"{100 * cupl[c]:.2f}" if c in cupl else "" for c in columns), "(baseline)"])
    for flags in sorted(cells, key=lambda f: (sum(f), f)):
        values = cells[flags]
        gains = [values[c] - cupl[c] for c in columns if c in values and c in cupl]
        delta = f"{100 * sum(gains) / len(gains):+.2f}" if gains else ""
        rows.append([*(mark(f) for f in flags), *(f"{100 * values[c]:.2f}" if c in values else "" for c in columns), delta])
    return ["Frs", "Ffs", "Soft-M", *columns, "Δ vs CuPL (avg.)"], rows


def cost_section(catalog: Catalog, infos: list[dict], columns: list[str], accuracy: dict, run_ids: list[str]) -> list[str]:
    """Accuracy against GFLOP per image (``glocal.results.cost_plot``): every (run, method) with a
    counted cost, the Pareto front marked, each sweep's points joined. [] when no cost is counted."""
    from glocal.results.cost_plot import CostPoint, cost_plot_svg, pareto_front

    costs = catalog.costs()
    points = [CostPoint(i["run_id"], m, column, gflop, 100 * accuracy[(i["run_id"], m)][1])
              for i, column in zip(infos, columns) for m in i["methods"]
              if (i["run_id"], m) in accuracy and (gflop := costs.get((i["run_id"], m), {}).get("gflop_per_image")) and gflop > 0]
    if not points:
        return []
    index = {(p.run_id, p.method): n for n, p in enumerate(points)}
    sweeps = [[index[(q["run_id"], q["method"])] for q in sw["points"] if q["role"] == "point" and (q["run_id"], q["method"]) in index]
              for sw in catalog.sweeps_within(run_ids)]
    front = ", ".join(f"{points[i].method} ({points[i].gflop:.3g} GFLOP, {points[i].top1_pct:.2f} %)" for i in pareto_front(points))
    return ["<h2>Accuracy against compute</h2>",
            '<p class="note">Each point a method of a run, at the GFLOP per image its accuracy costs (the image tower\'s '
            "forwards, counted from its shape; DINO not included). In red, the Pareto front: no other point is both cheaper "
            f"and at least as accurate ({html.escape(front)}); dashed, a sweep's points in the order of its values.</p>",
            cost_plot_svg(points, sweeps)]


def sweep_sections(sweeps: list[dict]) -> tuple[list[str], int]:
    """A table and a plot per sweep; returns (HTML parts, plots drawn)."""
    parts, plots = [], 0
    for sw in sweeps:
        points = [p for p in sw["points"] if p["role"] == "point" and p["top1"] is not None]
        baselines = {p["method"]: p["top1"] for p in sw["points"] if p["role"] == "baseline" and p["top1"] is not None}
        rows = [[str(p["value"]), p["run_id"], p["encoded_shards"], f"{100 * p['top1']:.2f}"] for p in points]
        rows += [[f"({m})", "", "", f"{100 * a:.2f}"] for m, a in baselines.items()]
        title = f"{sw['method']} on {sw['dataset']} / {Path(sw['backbone']).name}"
        parts += [f"<h2>Sweep {html.escape(sw['sweep_id'])}: {html.escape(sw['method'])} over {html.escape(sw['param'])}</h2>",
                  _table([sw["param"], "run", "shards encoded", "top-1 %"], rows, "sweep")]
        if sw["param"] == "seed" and len(points) > 1:  # randomness made visible: the mean and std over the seeds
            from glocal.results.seeds import summarise

            (_, n, mean, std, _, _), = summarise([p["value"] for p in points], [{sw["method"]: 100 * p["top1"]} for p in points], {sw["method"]: True})
            parts.append(f'<p class="seeds">{html.escape(sw["method"])} over {n} seeds: top-1 {mean:.2f} ± {std:.2f} % (population std)</p>')
        if points:
            picture = sweep_plot(sw["param"], sw["method"], [p["value"] for p in points], [p["top1"] for p in points], baselines, title)
            parts.append(f'<img class="plot" alt="sweep {html.escape(sw["sweep_id"])}" src="{_png_bytes(picture)}">')
            plots += 1
    return parts, plots


def reproduction_sections(repros: list[dict]) -> list[str]:
    """Per reproduction: measured (± std over draws) vs published top-1 per (dataset, backbone,
    method), the form each cell ran, and its notes."""
    parts = []
    for rep in repros:
        rows = [[c["dataset"], c["backbone"], c["method"], *formatted(c), c.get("form") or ""] for c in comparison_rows(rep)]
        parts += [f"<h2>Reproduction {html.escape(rep['repro_id'])}: table {html.escape(rep['table'])}, measured vs published</h2>",
                  f"<p>{html.escape(rep['source'])}</p>",
                  _table(["dataset", "backbone", "method", "images", "measured %", "published %", "difference", "form"], rows, "reproduction")]
        if rep["notes"]:
            parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in rep["notes"]) + "</ul>")
    return parts


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:6px;margin:0;width:700px}
.legend{font-size:small;padding-left:0;list-style:none}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.scale{display:block;margin:0.5em 0}.note{color:#555}
.card img{margin:2px;vertical-align:top}.plot{display:block;margin:1em 0}.right{color:#080}.wrong{color:#b00}ul{margin:4px 0;padding-left:18px}"""


def build_report(db: str, run_ids: list[str], out: str | Path, gallery: int = GALLERY, classes: int = 5) -> dict:
    """Write the report for ``run_ids``; returns counts of what it contains (for tests and logs)."""
    catalog = Catalog.read_only(db)
    infos = [catalog.run_info(r) for r in run_ids]
    accuracy = {(r, m): (n, top1) for r, _, _, m, n, top1 in catalog.accuracy() if r in run_ids}
    methods = list(dict.fromkeys(m for info in infos for m in info["methods"]))
    # each run named by what differs between them (a preset, a swept value), then its id
    from glocal.results.labels import differing, run_setting

    params = catalog.run_params()
    labels = differing([run_setting(params.get(i["run_id"], {})) for i in infos])
    columns = [" ".join(filter(None, [f"{i['dataset']} / {Path(i['backbone']).name}", label, f"({i['run_id']})"]))
               for i, label in zip(infos, labels)]
    acc_rows = [[m] + [f"{100 * accuracy[(i['run_id'], m)][1]:.2f}" if (i["run_id"], m) in accuracy else "" for i in infos] for m in methods]
    sections = [f"<h1>glocal report</h1><p>runs: {html.escape(', '.join(run_ids))}</p>",
                "<h2>Top-1 accuracy (%)</h2>", _table(["method", *columns], acc_rows, "accuracy")]
    # CLIP_benchmark's other two metrics (runs stored before they existed have none)
    metrics = catalog.metrics()
    for index, title, css in ((0, "Top-5 accuracy (%)", "top5"), (1, "Mean per-class recall (%)", "recall")):
        cells = [[m] + ["" if (value := metrics.get((i["run_id"], m), (None, None))[index]) is None else f"{value:.2f}" for i in infos]
                 for m in methods]
        if any(any(row[1:]) for row in cells):
            sections += [f"<h2>{title}</h2>", _table(["method", *columns], cells, css)]
    from glocal.results.seeds import seed_groups

    seeds = seed_groups([row for row in catalog.accuracy() if row[0] in run_ids], params)
    if seeds:  # runs that differ only in a method's seed (`--seeds`, a seed sweep): randomness next to the gains
        sections += ["<h2>Over seeds: top-1 mean ± std (%)</h2>",
                     _table(["dataset", "backbone", "method", "setting", "runs", "mean", "std"],
                            [[d, Path(b).name, m, label, run_id.split(":")[1], f"{mean:.2f}", f"{std:.2f}"]
                             for run_id, d, b, m, label, _, mean, _, _, _, std in seeds], "seeds")]
    plots = 0
    bars = {(m, col): accuracy[(i["run_id"], m)][1] for i, col in zip(infos, columns) for m in methods if (i["run_id"], m) in accuracy}
    if bars:
        sections.append(f'<img class="plot" alt="accuracy per method" src="{_png_bytes(accuracy_bars(methods, columns, bars))}">')
        plots += 1
        if not any(bars.values()):
            sections.append('<p class="note zero">Every method scored 0 % on these images, so the bars have no height '
                            "(tiny random-weight models score at chance or below).</p>")
    cost_part = cost_section(catalog, infos, columns, accuracy, run_ids)
    if cost_part:
        sections += cost_part
        plots += 1
    ablation = ablation_table(catalog, infos, accuracy)
    if ablation:
        sections += ["<h2>Ablation (ABS paper, Table 4 shape): top-1 (%)</h2>", _table(*ablation, "ablation")]
    sweeps = catalog.sweeps_within(run_ids)
    sweep_parts, sweep_plots = sweep_sections(sweeps)
    sections += sweep_parts
    plots += sweep_plots
    repros = catalog.reproductions_within(run_ids)
    sections += reproduction_sections(repros)
    compare_rows = []
    for info in infos:
        if "clip" not in info["methods"]:
            continue
        for m in info["methods"]:
            if m == "clip":
                continue
            ids, a, b = catalog.paired_correct((info["run_id"], m), (info["run_id"], "clip"))
            if ids:
                c = compare_paired(a, b, resamples=2_000)
                compare_rows.append([info["run_id"], m, c.images, f"{100 * c.difference:+.2f}",
                                     f"[{100 * c.interval[0]:+.2f}, {100 * c.interval[1]:+.2f}]", f"{c.only_a}/{c.only_b}", f"{c.p_value:.3g}"])
    if compare_rows:
        sections += ["<h2>Paired comparison with CLIP</h2>",
                     _table(["run", "method", "images", "Δ points", "bootstrap 95 %", "only method / only CLIP", "McNemar p"], compare_rows, "compare")]
    shown, with_attention = 0, False
    gallery_parts, drawn = [], {}
    for info in infos:
        # runs that scored the same images with the same crops (a sweep's points) share one gallery
        abs_crops = bool(crop_kinds_used(catalog, info["run_id"]) & ABS_KINDS)
        same = (info["dataset"], info.get("encode_key"), abs_crops)
        if same in drawn:
            gallery_parts += [f'<p class="note">Run {html.escape(info["run_id"])}: the same images and crops as the gallery of run '
                              f"{html.escape(drawn[same])}.</p>"]
            continue
        names = catalog.dataset(info["dataset"])["classnames"]
        block, n, attention, crops = _gallery(catalog, info, names, gallery, abs_crops)
        if n:
            drawn[same] = info["run_id"]
            with_attention |= attention
            what = (["the attention map over the photo (in grey)"] if attention else ["the photo"]) + (
                ["the top crops by the attention at their centre, numbered, and their feature-space windows on the token grid of the "
                 "region the backbone sees (CLIP's centre square); every crop one click away"] if crops else [])
            gallery_parts += [f"<h2>Gallery ({html.escape(info['run_id'])})</h2>",
                              f'<p class="note">Per image: {", ".join(what)}; the true class and each method\'s prediction.</p>', block]
            shown += n
        elif block:  # why this run has no gallery
            gallery_parts += [f"<h2>Gallery ({html.escape(info['run_id'])})</h2>", block]
    if with_attention:  # the colour scale only where an attention map is drawn
        gallery_parts.insert(1, f'<img class="scale" alt="attention colour scale" src="{_png_bytes(colour_scale())}">')
    sections += gallery_parts
    class_rows, most = [], 0
    for info in infos:
        names = catalog.dataset(info["dataset"])["classnames"]
        per = catalog.per_class_accuracy(info["run_id"])
        most = max([most] + [r[2] for r in per])
        for m in info["methods"]:
            rows = sorted((r for r in per if r[0] == m and r[2] >= MIN_CLASS_IMAGES), key=lambda r: (-r[3], -r[2], r[1]))
            picked = rows[:classes] + [r for r in rows[-classes:] if r not in rows[:classes]]
            class_rows += [[info["run_id"], m, "best" if r in rows[:classes] else "worst", names[r[1]], r[2], f"{100 * r[3]:.1f}"] for r in picked]
    if class_rows:
        sections += [f"<h2>Per-class accuracy: {classes} best and worst classes per method (classes with {MIN_CLASS_IMAGES}+ images)</h2>",
                     _table(["run", "method", "", "class", "images", "top-1 %"], class_rows, "classes")]
    else:
        sections.append(f'<p class="note">Per-class accuracy is not shown: no class has {MIN_CLASS_IMAGES} or more images in these runs '
                        f"(at most {most}), too few for a class's accuracy to mean anything.</p>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>glocal report</title><style>{STYLE}</style></head>'
                   f"<body>{''.join(sections)}</body></html>", encoding="utf-8")
    return {"path": str(out), "methods": len(methods), "comparisons": len(compare_rows), "class_rows": len(class_rows), "gallery": shown,
            "plots": plots, "ablation_rows": len(ablation[1]) if ablation else 0, "sweeps": len(sweeps), "reproductions": len(repros)}

