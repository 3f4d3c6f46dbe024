"""CLIP_benchmark's webdataset folders (``clip-benchmark/wds_<name>`` on the Hugging Face hub, or
written by ``clip_benchmark_export_wds``), read as its ``build_wds_dataset`` reads them::

    wds_<name>/
        classnames.txt                          one class name per line, in label order
        zeroshot_classification_templates.txt   one prompt per line, "{c}" for the class name
        test/ nshards.txt 0.tar 1.tar ...       samples: an image (webp / png / jpg / jpeg) + "cls"
        train/ ...

Only the folder's own files are read: glocal ingests the ``test`` split (the zero-shot protocol's),
with the class names and templates beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLIT = "test"


@dataclass(frozen=True)
class ClipBenchmarkFolder:
    root: Path
    shards: list[str]  # the split's tar files in shard order
    classnames: list[str] | None  # classnames.txt (None when absent)
    templates: list[str] | None  # zeroshot_classification_templates.txt, "{c}" made "{}" (None when absent)


def is_clip_benchmark_folder(path: str | Path) -> bool:
    """A folder with a ``test/`` split of tar shards (CLIP_benchmark's wds layout)."""
    split = Path(path) / SPLIT
    return split.is_dir() and any(split.glob("*.tar"))


def read_clip_benchmark_folder(path: str | Path) -> ClipBenchmarkFolder:
    """The test split's shards (0.tar, 1.tar, ... in number order; ``nshards.txt`` when present
    must agree) and the class names and templates beside them."""
    root = Path(path)
    split = root / SPLIT
    tars = sorted(split.glob("*.tar"), key=lambda p: (not p.stem.isdigit(), int(p.stem) if p.stem.isdigit() else 0, p.name))
    count = split / "nshards.txt"
    if count.exists():
        try:
            expected = int(count.read_text().strip())
        except ValueError:
            raise ValueError(f"{count}: expected the number of shards (an integer)") from None
        missing = [f"{i}.tar" for i in range(expected) if not (split / f"{i}.tar").exists()]
        if missing:
            raise FileNotFoundError(f"{split}: nshards.txt says {expected} shards but {', '.join(missing[:3])} "
                                    f"{'is' if len(missing) == 1 else 'are'} missing; download the split again")
        tars = [split / f"{i}.tar" for i in range(expected)]
    names = root / "classnames.txt"
    templates = root / "zeroshot_classification_templates.txt"
    return ClipBenchmarkFolder(root, [str(p) for p in tars],
                               lines(names) if names.exists() else None,
                               [from_clip_benchmark(t) for t in lines(templates)] if templates.exists() else None)


def lines(path: Path) -> list[str]:
    """Non-empty lines, stripped (as CLIP_benchmark's ``line.strip()``)."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def from_clip_benchmark(template: str) -> str:
    """CLIP_benchmark writes the class name as ``{c}`` (``template.format(c=name)``); glocal's
    templates take ``{}``."""
    return template.replace("{c}", "{}")
