"""The ``glocal`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _offline_defaults() -> None:
    # Nothing phones home unless the user says otherwise.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def cmd_methods(args) -> int:
    from glocal.registry import get_method, method_names

    for name in method_names():
        spec = get_method(name)
        print(f"{name:8s} image={','.join(sorted(spec.image_needs)):14s} text={','.join(sorted(spec.text_needs)):22s} {spec.summary}")
    return 0


def cmd_presets(args) -> int:
    from glocal.config import PRESETS, config_hash, config_to_dict

    for name, cfg in PRESETS.items():
        print(f"{name:14s} {config_hash(cfg)}  {config_to_dict(cfg)}")
    return 0


def cmd_demo(args) -> int:
    from glocal.demo import run_demo

    result = run_demo(
        images=args.images,
        model=args.model,
        attention_model=args.attention_model,
        methods=args.methods.split(","),
        limit=args.limit,
        n_crops=args.n_crops,
        workdir=Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / "glocal-demo",
    )
    return 0 if result["scored"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glocal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="score sample images with every method, offline (tiny random models unless --model)",
        description=(
            "Run every method end to end on a folder of images (default: ../shared/data/images/"
            "imagenet-sample when present, else generated images). Without --model it builds tiny "
            "random-weight CLIP and DINO models, so accuracy is at chance: the point is that every "
            "stage runs. With --model <hub id or dir> on a connected machine it uses real weights."
        ),
    )
    demo.add_argument("--images", help="image folder (class sub-folders or labels.csv)")
    demo.add_argument("--model", help="CLIP hub id or local dir (default: a tiny random CLIP)")
    demo.add_argument("--attention-model", help="DINO/DINOv2 hub id or dir (default: shared DINOv2 if present, else tiny random)")
    demo.add_argument("--methods", default="clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca", help="comma-separated method names")
    demo.add_argument("--limit", type=int, default=40, help="number of images (default 40)")
    demo.add_argument("--n-crops", type=int, default=None, help="override N for ABS/WCA/LGCA (smaller is faster)")
    demo.add_argument("--workdir", help="where tiny models are cached (default: a temp dir)")
    demo.set_defaults(fn=cmd_demo)

    methods = sub.add_parser("methods", help="list the registered methods")
    methods.set_defaults(fn=cmd_methods)
    presets = sub.add_parser("presets", help="list the named presets and their content hashes")
    presets.set_defaults(fn=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    _offline_defaults()
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        code = args.fn(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"glocal: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "demo":
        print(f"done in {time.time() - start:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
