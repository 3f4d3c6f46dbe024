"""Shard reading: decoding ahead in threads keeps shard order and bounds what is held."""

import io

import numpy as np
from PIL import Image

from glocal.shards import _decoded_ahead, iter_shard, read_shard, write_shard


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


def test_decoding_ahead_is_bounded():
    pulled = []

    def samples():
        for i in range(50):
            pulled.append(i)
            yield {"json": b'{"image_id": "x%d", "label": 0}' % i, "img": _jpeg(0)}

    stream = _decoded_ahead(samples(), threads=2, depth=4)
    first = next(stream)
    assert first[0] == "x0" and len(pulled) == 4  # never more than `depth` read ahead
    assert [item[0] for item in stream] == [f"x{i}" for i in range(1, 50)]
