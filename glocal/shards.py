"""Webdataset shards: write an ingested dataset, read one shard back as decoded images."""

from __future__ import annotations

import io
import json
import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Iterator

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


def shard_ids(path: str | os.PathLike) -> list[tuple[str, int]]:
    """(image_id, label) in shard order, reading only the small json members (no image decode)."""
    import tarfile

    out = []
    with tarfile.open(path) as tar:
        for member in tar:
            if member.name.endswith(".json"):
                meta = json.loads(tar.extractfile(member).read())
                out.append((meta["image_id"], int(meta["label"])))
    return out


def iter_shard(path: str | os.PathLike, prefetch: int = 0) -> Iterator[tuple[str, int, Image.Image]]:
    """(image_id, label, RGB image) in shard order, decoded lazily; with ``prefetch`` > 0 a
    background thread decodes up to that many images ahead, so decoding overlaps the encoder
    (PIL's decoder releases the GIL)."""
    def decoded():
        for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
            meta = json.loads(sample["json"])
            with Image.open(io.BytesIO(sample["img"])) as im:
                yield meta["image_id"], int(meta["label"]), im.convert("RGB")

    return _prefetched(decoded(), prefetch) if prefetch > 0 else decoded()


def _prefetched(items: Iterator, depth: int) -> Iterator:
    done = object()
    buffer: queue.Queue = queue.Queue(maxsize=depth)

    def produce():
        try:
            for item in items:
                buffer.put(item)
        except BaseException as exc:  # surfaced in the consumer
            buffer.put(exc)
        buffer.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
