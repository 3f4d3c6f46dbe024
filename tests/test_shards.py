"""Shard reading: decoding ahead in threads keeps shard order and bounds what is held."""

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from glocal.data.shards import _decoded_ahead, iter_shard, read_shard, write_shard


def _jpeg(seed: int, mode: str = "RGB") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (23 + seed, 31, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="JPEG")
    return buf.getvalue()


def test_threaded_decoding_keeps_order_and_pixels(tmp_path):
    samples = [(f"img.{i}", i % 3, _jpeg(i, "L" if i == 4 else "RGB"), "jpg") for i in range(9)]
    write_shard(tmp_path / "s.tar", samples)
    inline = read_shard(tmp_path / "s.tar")
    threaded = list(iter_shard(tmp_path / "s.tar", prefetch=3, threads=3))
    assert [(i, label) for i, label, _ in threaded] == [(s[0], s[1]) for s in samples]
    assert all(a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b)) for (_, _, a), (_, _, b) in zip(threaded, inline))
    assert threaded[4][2].size == (31, 27)  # the greyscale one, converted


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _samples(pulled: list, count: int = 50, fail_at: int | None = None):
    for i in range(count):
        if i == fail_at:
            raise OSError("truncated tar")
        pulled.append((i, threading.current_thread().name))
        yield {"json": b'{"image_id": "x%d", "label": 0}' % i, "img": _jpeg(0)}


def test_reading_ahead_is_bounded_and_off_the_consumer_thread():
    pulled = []
    stream = _decoded_ahead(_samples(pulled), threads=2, depth=4)
    first = next(stream)
    assert first[0] == "x0"
    _wait_for(lambda: len(pulled) >= 5)
    time.sleep(0.2)  # the reader must now be waiting for a slot, not reading on
    assert len(pulled) == 5  # 1 handed over + `depth` read ahead, never more
    assert {name for _, name in pulled} == {"glocal-read"}  # the tar is not read on the consumer's thread
    assert [item[0] for item in stream] == [f"x{i}" for i in range(1, 50)]


def test_a_read_error_arrives_in_order_and_an_early_close_stops_the_reader():
    stream = _decoded_ahead(_samples([], fail_at=3), threads=2, depth=8)
    assert [next(stream)[0] for _ in range(3)] == ["x0", "x1", "x2"]
    with pytest.raises(OSError, match="truncated tar"):
        next(stream)

    pulled = []
    stream = _decoded_ahead(_samples(pulled), threads=2, depth=4)
    next(stream)
    stream.close()
    assert not any(t.name == "glocal-read" for t in threading.enumerate())
    count = len(pulled)
    time.sleep(0.2)
    assert len(pulled) == count <= 5
