"""Webdataset shards: write an ingested dataset, read one shard back as decoded images."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import webdataset as wds
from PIL import Image


def write_shard(path: Path, samples: list[tuple[str, int, bytes, str]]) -> None:
    """samples: (image_id, label, encoded bytes, extension). Written under a temp name, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as fh, wds.TarWriter(fh) as sink:
        for index, (image_id, label, data, ext) in enumerate(samples):
            # webdataset splits keys at dots, so the key is an index and the id travels in json
            sink.write({"__key__": f"{index:08d}", "img": data, "json": json.dumps({"image_id": image_id, "label": label, "ext": ext}).encode()})
    os.replace(tmp, path)


def read_shard(path: str | os.PathLike) -> list[tuple[str, int, Image.Image]]:
    """(image_id, label, RGB image) for every sample of one shard, in shard order."""
    out = []
    for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        with Image.open(io.BytesIO(sample["img"])) as im:
            out.append((meta["image_id"], int(meta["label"]), im.convert("RGB")))
    return out
