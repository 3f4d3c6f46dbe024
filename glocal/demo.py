"""``glocal demo --in-process``: the core path on a handful of images, offline, without Prefect or
DuckDB (a quick look; ``glocal demo`` itself runs the pipeline, ``flows/demo.py``).

Reads images, computes DINO attention, extracts every feature the methods need, builds the text
bank and prints top-1 accuracy per method. Bad images are reported and skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from glocal.attention import ClipAttention, DinoAttention, UniformAttention
from glocal.backbones import load_backbone
from glocal.data import BadImage, open_image, read_dataset
from glocal.demo_data import SHARED_DATA, SHARED_DINO, SHARED_SAMPLE, generate_images, text_inputs
from glocal.extract import extract_features
from glocal.scoring import with_crops, configs_by_type, image_needs, resolve_methods, score_all, text_needs, waffle_form
from glocal.text import prompt_sentences, clip_d_sentences, template_sentences
from glocal.text_kinds import TEXT_KINDS, build_sentences
from glocal.waffle_text import waffle_set
from glocal.textbank import build_text_bank
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
    workdir.mkdir(parents=True, exist_ok=True)
    runs = resolve_methods(methods or [])  # unknown names fail here, before any compute
    if n_crops is not None:
        runs = [with_crops(r, n_crops) for r in runs]

    root = Path(images) if images else (SHARED_SAMPLE if SHARED_SAMPLE.exists() else generate_images(workdir / "generated"))
    dataset = "imagenet" if root.resolve() == SHARED_SAMPLE.resolve() else root.name
    records, folder_classes = read_dataset(root)
    records = records[:limit]
    if dataset == "imagenet" and (SHARED_DATA / "classnames" / "imagenet.json").exists():
        folder_classes = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    if folder_classes is None:
        raise ValueError(f"{root}: cannot tell the class names; use class sub-folders or a classname column")
    print(f"images: {root} ({len(records)} of them), methods: {', '.join(r.spec.name for r in runs)}")

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

    model, attention_model = resolve_models(workdir, model, attention_model)
    backbone = load_backbone(model)
    texts = text_inputs(dataset, folder_classes, keep)
    for note in texts.notes:
        print(f"note: {note}")
    needed_text = text_needs(runs)
    bank = build_text_bank(
        backbone,
        classnames,
        prompts=prompt_sentences(classnames) if needed_text & {"prompts"} else None,
        templates=template_sentences(classnames, texts.templates) if "templates" in needed_text else None,
        descriptions=texts.descriptions if "descriptions" in needed_text else None,
        clip_d=clip_d_sentences(classnames, texts.clip_d) if "clip_d" in needed_text else None,
        waffle=waffle_set(classnames, texts.clip_d, *waffle_form(runs), SHARED_DATA / "waffle_words.json") if "waffle" in needed_text else None,
        extra={name: build_sentences(name, classnames, texts) for name in needed_text & set(TEXT_KINDS)},
    )

    needs = image_needs(runs)
    configs = configs_by_type(runs)
    maps, frame = None, "stretch"
    if needs & {"raw", "feat"}:
        source = {"dino": lambda: DinoAttention.from_pretrained(attention_model), "clip": lambda: ClipAttention(backbone), "uniform": UniformAttention}[configs["abs_config"].attention]()
        maps, frame = source.maps(decoded), source.frame
    features, _ = extract_features(
        backbone, decoded, ids, needs, attention_maps=maps, attention_frame=frame,
        class_embeddings=bank.descriptions.class_means() if bank.descriptions is not None else None,
        **configs,
    )
    scores = score_all(runs, features, bank)
    print(f"\n{'method':8s}  top-1  (n={len(ids)}, {len(classnames)} classes)")
    for name, s in scores.items():
        acc = (s.argmax(1) == targets).float().mean().item()
        print(f"{name:8s}  {100 * acc:5.1f}%")
    return {"scored": len(ids), "skipped": skipped, "scores": scores, "targets": targets}
