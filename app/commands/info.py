"""Commands that describe glocal itself or write example inputs: `models tiny`, `miniature`, `methods`, `presets`."""

from __future__ import annotations

import dataclasses
from pathlib import Path



def cmd_methods(args) -> int:
    import shutil
    import textwrap

    from glocal.methods import get_method, method_names

    width = max(shutil.get_terminal_size((100, 24)).columns, 80)
    for name in method_names():
        spec = get_method(name)
        head = f"{name:8s} image={','.join(sorted(spec.image_needs)):14s} text={','.join(sorted(spec.text_needs)):22s} "
        print(textwrap.fill(spec.summary, width, initial_indent=head, subsequent_indent=" " * len(head)))
    return 0


def cmd_models_tiny(args) -> int:
    from glocal.tiny import build_tiny_clip, build_tiny_dino

    out = Path(args.out)
    clip, dino = build_tiny_clip(out / "tiny-clip"), build_tiny_dino(out / "tiny-dino")
    print(f"tiny random-weight models (accuracy at chance: for trying the pipeline offline):\n  --model {clip}\n"
          f"  --attention-model {dino}")
    return 0


def cmd_miniature(args) -> int:
    from glocal.data.miniature import build_data_root, miniature_datasets
    datasets = args.datasets.split(",") if args.datasets else None
    unknown = sorted(set(datasets or []) - set(miniature_datasets()))
    if unknown:
        raise ValueError(f"no miniature for {unknown}; datasets: {', '.join(miniature_datasets())}")
    for dataset, folder in build_data_root(Path(args.out), None, datasets).items():  # labelled with glocal's class lists
        print(f"{dataset:16s} {folder}")
    return 0


def preset_rows() -> list[dict]:
    """Every preset as ``glocal presets`` lists it: its method, content hash, which form it is
    (the method's default, the official code's form that the ABS tables measured) and the fields
    it sets away from its config class's defaults."""
    from glocal.config import DEFAULT_PRESET, OFFICIAL_PRESET, PRESETS, config_hash
    from glocal.methods import get_method, method_names

    method_of = {get_method(m).config_cls: m for m in method_names()}
    rows = []
    for name, config in PRESETS.items():
        method = method_of.get(type(config), "?")
        roles = [label for label, table in (("default", DEFAULT_PRESET), ("official (ABS tables)", OFFICIAL_PRESET)) if table.get(method) == name]
        defaults = type(config)()
        changed = [f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(defaults, f.name)]
        rows.append({"name": name, "method": method, "hash": config_hash(config), "form": ", ".join(roles), "settings": " ".join(changed)})
    return rows


def cmd_presets(args) -> int:
    rows = preset_rows()
    width = max(len(r["name"]) for r in rows)
    print(f"{'preset':{width}s}  {'method':7s} {'hash':16s}  {'form':28s} settings (beside the config's defaults)")
    for r in rows:
        print(f"{r['name']:{width}s}  {r['method']:7s} {r['hash']:16s}  {r['form']:28s} {r['settings'] or '(defaults)'}")
    return 0


def add(sub) -> None:
    """This group's subcommands."""
    models = sub.add_parser("models", help="model helpers: `glocal models tiny --out DIR` writes tiny random CLIP and DINO models")
    model_sub = models.add_subparsers(dest="models_command", required=True, help="tiny: write tiny random models")
    tiny = model_sub.add_parser("tiny", help="write a tiny random CLIP and DINO (offline; for trying every command here)")
    tiny.add_argument("--out", default="models", help="folder for tiny-clip/ and tiny-dino/")
    tiny.set_defaults(fn=cmd_models_tiny)

    mini = sub.add_parser("miniature", help="write a miniature data root (each benchmark's layout, a few generated images) "
                                            "to try `glocal reproduce` offline")
    mini.add_argument("--out", default="miniature-data", help="the data root to write")
    mini.add_argument("--datasets", help="comma-separated subset (default: every benchmark dataset)")
    mini.set_defaults(fn=cmd_miniature)

    methods = sub.add_parser("methods", help="list the registered methods")
    methods.set_defaults(fn=cmd_methods)

    presets = sub.add_parser("presets", help="list the named presets and their content hashes")
    presets.set_defaults(fn=cmd_presets)
