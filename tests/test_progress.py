"""Progress inside the long stages: text embedding counts sentences, encoding counts images (not
whole shards), and a bar that finishes a shard lands on its exact count."""

import torch

from glocal.progress import reach, stage_bar, tick


def test_encode_ticks_one_per_image_inside_a_shard(tiny_clip, monkeypatch):
    from PIL import Image

    from glocal.config import WCAConfig
    from glocal.encode.engine import encode_features

    monkeypatch.setenv("GLOCAL_PROGRESS", "1")
    images = [Image.new("RGB", (40 + 3 * k, 30), (k * 40, 0, 0)) for k in range(5)]
    with stage_bar(5, "encode", unit="image") as bar:
        seen = []
        real_tick = tick

        def watched(n=1):
            real_tick(n)
            seen.append(bar.n)

        monkeypatch.setattr("glocal.encode.engine.tick", watched)
        encode_features(tiny_clip, images, [f"i{k}" for k in range(5)], {"full", "wca"}, wca_config=WCAConfig(n_crops=2))
        assert seen == [1, 2, 3, 4, 5]  # one step per image, within the one shard
        reach(bar, 5)
        assert bar.n == 5  # the shard's end does not count its images twice


def test_text_embedding_counts_sentences_in_blocks(monkeypatch):
    from contextlib import contextmanager

    import glocal.text.bank as textbank

    monkeypatch.setenv("GLOCAL_PROGRESS", "1")
    monkeypatch.setattr(textbank, "TEXT_BLOCK", 2)
    bars = []

    @contextmanager
    def recorded(total, desc, unit="it", initial=0):
        with stage_bar(total, desc, unit, initial) as bar:
            yield bar
            bars.append((desc, unit, bar.total, bar.n))

    monkeypatch.setattr(textbank, "stage_bar", recorded)

    class Backbone:
        calls = []

        def encode_text(self, texts):
            self.calls.append(len(texts))
            return torch.nn.functional.normalize(torch.ones(len(texts), 3), dim=-1)

    backbone = Backbone()
    bank = textbank.build_text_bank(backbone, ["a", "b"], prompts=["pa", "pb"], descriptions=[["x", "y", "z"], ["w"]])
    assert bank.descriptions.emb.shape == (2, 3, 3)
    assert backbone.calls == [2, 2, 2]  # 6 sentences in blocks of 2
    assert bars == [("text embedding", "sentence", 6, 6)]


def test_tick_advances_the_innermost_open_bar_only(monkeypatch):
    """Nested stages: ticks go to the inner bar while it is open, then to the outer; once both are
    closed (a Dask worker has none open) a tick changes nothing."""
    monkeypatch.setenv("GLOCAL_PROGRESS", "1")
    with stage_bar(10, "outer") as outer:
        with stage_bar(5, "inner") as inner:
            tick(2)
        tick(3)
        assert (outer.n, inner.n) == (3, 2)
    tick(4)
    assert (outer.n, inner.n) == (3, 2)


def test_shard_task_runs_are_named_by_stage_and_shard():
    """Prefect shows "encode shard 2", not an opaque "encode-shard-65f"."""
    from flows.cluster import run_shards

    names, registered = [], []

    class Task:
        def with_options(self, task_run_name):
            names.append(task_run_name)
            return lambda **inputs: {"shard": inputs["shard"]}

    run_shards("encode", [0, 2], Task(), lambda shard: {"shard": shard}, lambda shard, result: registered.append(result["shard"]))
    assert names == ["encode shard 0", "encode shard 2"] and registered == [0, 2]
