"""``glocal demo --in-process``: the evaluate flow's plan and core functions on a handful of
images, in this process, offline, without Prefect or DuckDB (a quick look; ``glocal demo`` itself
runs the pipeline, ``flows/demo.py``). Bad images are reported and skipped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glocal.encode.attention import load_attention_source
from glocal.backbones import load_backbone
from glocal.data.images import BadImage, open_image, read_dataset
from glocal.data.demo_data import SHARED_DINO, SHARED_SAMPLE, generate_images
from glocal.paths import read_json, text_data
from glocal.text.dataset_text import text_inputs
from glocal.encode.extract import extract_features
from glocal.run.request import RunRequest
from glocal.run.plan import plan_run
from glocal.run.scoring import score_all
from glocal.text.sentence_sets import sentence_sets
from glocal.text.bank import bank_from_sentences
from glocal.tiny import build_tiny_clip, build_tiny_dino


def resolve_models(workdir: Path, model: str | None, attention_model: str | None) -> tuple[str, str]:
    if model is None:
        model = str(workdir / "tiny-clip")
        if not (Path(model) / "config.json").exists():
            build_tiny_clip(model)
    if attention_model is None:
        if (SHARED_DINO / "config.json").exists():
            attention_model = str(SHARED_DINO)
        else:
            attention_model = str(workdir / "tiny-dino")
            if not (Path(attention_model) / "config.json").exists():
                build_tiny_dino(attention_model)
    return model, attention_model


def run_demo(images=None, model=None, attention_model=None, methods=None, limit=40, n_crops=None, workdir: Path = Path(".")) -> dict:
    """The pipeline's plan and core functions (``glocal.run.plan``, ``glocal.text.sentence_sets``, the
    text bank, the attention source, the reference extractor, the methods) run in this process on
    the images held in memory: what the evaluate flow does per shard, without its stages' storage."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(images) if images else (SHARED_SAMPLE if SHARED_SAMPLE.exists() else generate_images(workdir / "generated"))
    dataset = "imagenet" if root.resolve() == SHARED_SAMPLE.resolve() else root.name
    model, attention_model = resolve_models(workdir, model, attention_model)
    # unknown names, presets or values fail here, before any image is read
    plan = plan_run(RunRequest(dataset=dataset, model=model, attention_model=attention_model, methods=tuple(methods or ()), n_crops=n_crops))
    records, folder_classes = read_dataset(root)
    records = records[:limit]
    if dataset == "imagenet":
        folder_classes = read_json(text_data("classnames/imagenet.json"))
    if folder_classes is None:
        raise ValueError(f"{root}: cannot tell the class names; use class sub-folders or a classname column")
    print(f"images: {root} ({len(records)} of them), methods: {', '.join(plan.methods)}")

    decoded, ids, labels, skipped = [], [], [], []
    for rec in records:
        try:
            decoded.append(open_image(rec.path))
            ids.append(rec.image_id)
            labels.append(rec.label)
        except BadImage as exc:
            skipped.append((rec.image_id, str(exc)))
    for image_id, reason in skipped:
        print(f"skipped {image_id}: {reason}")
    # Score among the classes present, so a few images make a meaningful task.
    keep = sorted(set(labels))
    remap = {old: new for new, old in enumerate(keep)}
    classnames = [folder_classes[i] for i in keep]
    targets = torch.tensor([remap[label] for label in labels])

    backbone = load_backbone(model)
    sets, notes = sentence_sets(classnames, set(plan.text_needs), text_inputs(dataset, folder_classes, keep), None, plan.waffle_form())
    for note in notes:
        print(f"note: {note}")
    bank = bank_from_sentences(backbone, sets)
    maps, frame = None, "stretch"
    if plan.attention is not None:
        source = load_attention_source(plan.attention, model=attention_model, backbone=backbone)
        maps, frame = source.maps(decoded), source.frame
    features, _ = extract_features(
        backbone, decoded, ids, set(plan.needs), attention_maps=maps, attention_frame=frame,
        class_embeddings=bank.descriptions.class_means() if plan.text_guided else None, **plan.configs,
    )
    scores = score_all(list(plan.runs), features, bank, plan.memory)
    print(f"\n{'method':8s}  top-1  (n={len(ids)}, {len(classnames)} classes)")
    for name, s in scores.items():
        acc = (s.argmax(1) == targets).float().mean().item()
        print(f"{name:8s}  {100 * acc:5.1f}%")
    return {"scored": len(ids), "skipped": skipped, "scores": scores, "targets": targets}
