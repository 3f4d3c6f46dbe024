"""Webdataset shards: write an ingested dataset, read one shard back as decoded images."""

from __future__ import annotations

import io
import json
import os
import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import webdataset as wds
from PIL import Image

from glocal.data.images import to_rgb

PREFETCH_IMAGES = 32  # read and decoded ahead of a stage's model (bounds the decoded images held)
DECODE_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))  # JPEG decoding scales with threads; the rest of the cores feed torch


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
    return list(iter_shard(path))


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


def stream_images(path: str | os.PathLike) -> tuple[list[str], Iterator[Image.Image]]:
    """A stage's view of one shard: its image ids (read from the small json members first, so the
    stage can size its outputs) and its RGB images in the same order, read and decoded ahead of
    the caller by the default reader and decoder threads."""
    ids = [image_id for image_id, _ in shard_ids(path)]
    images = (image for _, _, image in iter_shard(path, prefetch=PREFETCH_IMAGES, threads=DECODE_THREADS))
    return ids, images


def iter_shard(path: str | os.PathLike, prefetch: int = 0, threads: int = 1) -> Iterator[tuple[str, int, Image.Image]]:
    """(image_id, label, RGB image) in shard order, decoded lazily. With ``prefetch`` > 0, up to
    that many images are read (on a reader thread) and decoded (by ``threads`` decoder threads)
    ahead of the caller, so reading and decoding overlap the encoder and decoding scales with
    cores (PIL's JPEG decoder releases the GIL; threads, unlike worker processes, hand the decoded
    image over without pickling it)."""
    samples = wds.WebDataset(str(path), shardshuffle=False, empty_check=False)
    if prefetch <= 0:
        return (_decode(sample) for sample in samples)
    return _decoded_ahead(samples, max(1, threads), prefetch)


def _decode(sample: dict) -> tuple[str, int, Image.Image]:
    meta = json.loads(sample["json"])
    with Image.open(io.BytesIO(sample["img"])) as im:
        return meta["image_id"], int(meta["label"]), to_rgb(im)  # as ingest saw it (orientation, 16 bit, alpha)


def _decoded_ahead(samples: Iterable[dict], threads: int, depth: int) -> Iterator:
    """Decode in a thread pool, in order, with at most ``depth`` samples read and not yet handed
    over (memory stays bounded whatever the shard size). The tar is read on a reader thread, so a
    slow disk or network filesystem stalls the reader, not the encoder. An error while reading
    reaches the consumer at its place in the order; closing the generator early stops the reader."""
    slots = threading.Semaphore(depth)  # one per sample read ahead of the consumer
    ready: queue.Queue = queue.Queue()  # futures in shard order, then _END (or the read error)
    stop = threading.Event()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="glocal-decode")

    def read() -> None:
        try:
            source = iter(samples)
            while True:
                while not slots.acquire(timeout=0.1):  # a slot before reading: at most `depth` held
                    if stop.is_set():
                        return
                if stop.is_set() or (sample := next(source, _END)) is _END:
                    return
                ready.put(pool.submit(_decode, sample))
        except BaseException as exc:  # handed to the consumer, raised there in order
            ready.put(exc)
        finally:
            ready.put(_END)

    reader = threading.Thread(target=read, name="glocal-read", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            slots.release()
            yield item.result()
    finally:
        stop.set()
        reader.join()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
