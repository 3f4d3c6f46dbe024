"""What each method's accuracy costs per image, counted (#30, in part): encoder forwards by kind
against hand counts for every method's default preset, FLOPs equal to benchmarks/encode.py's count
for the same tower, and the counts stored per run, in SQL and in `glocal runs`."""

import json
import sys
from pathlib import Path

import pytest

from glocal.config import ABSConfig, LGCAConfig, WCAConfig, config_for
from glocal.encode.cost import Tower, method_cost, tower_of
from glocal.methods import get_method

B16 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16, image_size=224)


def cost(name, config=None, tower=None):
    spec = get_method(name)
    return method_cost(spec, config if config is not None else config_for(name, spec.config_cls), tower)


@pytest.mark.parametrize("name, forwards, windows, attention", [
    ("clip", {"full": 1}, 0, 0), ("clip_e", {"full": 1}, 0, 0), ("cupl", {"full": 1}, 0, 0),
    ("clip_d", {"full": 1}, 0, 0), ("waffle", {"full": 1}, 0, 0),
    ("wca", {"full": 1, "wca": 60}, 0, 0),  # 1 + N
    ("abs", {"full": 1, "raw": 60, "feat": 60}, 1, 1),  # ABS at N=60: 1 full + 60 raw + 60 last-block windows, 1 DINO
    ("lgca", {"full": 1, "lgca": 120}, 0, 0),  # N0 = 60, then K = 20 at each of T = 3 steps
    ("zero", {"full": 1, "views": 63}, 0, 0), ("mta", {"full": 1, "views": 63}, 0, 0),  # the official 64 views
    ("awt", {"full": 1, "views": 50}, 0, 0),  # the original + 50 views
    ("bifta", {"full": 1, "bifta": 100}, 0, 0),  # at most 100 kept crops (the filter keeps K <= 100 of 100 drawn)
])
def test_forwards_by_hand_for_every_default_preset(name, forwards, windows, attention):
    counted = cost(name, tower=tower_of(B16))
    assert counted["forwards"] == forwards and counted["window_blocks"] == windows and counted["attention_forwards"] == attention


def test_window_passes_run_from_the_feature_layer():
    tower = tower_of(B16)
    assert cost("abs", ABSConfig(n_crops=10, layer_id=8), tower)["window_blocks"] == 4  # blocks 8..11
    assert cost("abs", ABSConfig(n_crops=10, use_feature=False), tower)["forwards"] == {"full": 1, "raw": 10}  # Ffs off: no windows


def test_flops_are_the_benchmarks_count():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from encode import TOWERS, image_flops

    for n in (60, 50):
        assert cost("abs", ABSConfig(n_crops=n), tower_of(TOWERS["B16"]))["gflop_per_image"] == pytest.approx(image_flops(TOWERS["B16"], n) / 1e9)
    # by hand for a tiny tower: 50 tokens of width 32, MLP 64, 3 blocks, 8 px patches on 56 px
    tiny = Tower(hidden=32, intermediate=64, layers=3, patch=8, image_size=56)
    block = 2 * 50 * 32 * 128 + 2 * 50 * 32 * 64 * 2 + 4 * 50 * 50 * 32
    forward = 3 * block + 2 * 49 * 3 * 64 * 32
    assert cost("wca", WCAConfig(n_crops=5), tiny)["gflop_per_image"] == pytest.approx(6 * forward / 1e9)
    assert cost("lgca", LGCAConfig(n_crops=6, top_k=2, steps=2), tiny)["gflop_per_image"] == pytest.approx((1 + 6 + 4) * forward / 1e9)
    assert cost("abs", ABSConfig(n_crops=3), tiny)["gflop_per_image"] == pytest.approx((4 * forward + 3 * block) / 1e9)
    assert cost("abs", ABSConfig(n_crops=3), None)["gflop_per_image"] is None  # no countable tower: not guessed


@pytest.mark.usefixtures("prefect_server")
def test_a_run_stores_its_costs_and_runs_shows_them(tmp_path, tiny_clip_dir, tiny_dino_dir):
    from app.cli import main
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from storage import Catalog
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=1)), shard_size=4)
    result = evaluate(dataset="shapes", model=str(tiny_clip_dir), methods=["clip", "wca", "abs"], db=db,
                      attention_model=str(tiny_dino_dir), n_crops=3)
    _, rows, _ = Catalog(db).query(f"SELECT method, forwards, window_blocks, gflop_per_image FROM method_cost WHERE run_id = '{result['run_id']}'")
    stored = {m: (json.loads(f), w, g) for m, f, w, g in rows}
    tiny = Tower(hidden=32, intermediate=64, layers=3, patch=8, image_size=56)  # build_tiny_clip's tower
    assert stored["abs"][:2] == ({"full": 1, "raw": 3, "feat": 3}, 1)
    assert stored["abs"][2] == pytest.approx((4 * tiny.forward_flops() + 3 * tiny.block_flops()) / 1e9)
    assert stored["wca"][2] == pytest.approx(4 * tiny.forward_flops() / 1e9) and stored["clip"][2] == pytest.approx(tiny.forward_flops() / 1e9)
    # to a file, not capsys: a flow run inside a capsys test binds Prefect's console to its stream,
    # closed for the tests after it
    assert main(["runs", "--format", "json", "--output", str(tmp_path / "runs.json"), "--db", db]) == 0
    shown = {r["method"]: r["gflop_per_image"] for r in json.loads((tmp_path / "runs.json").read_text())}
    assert shown == {m: round(stored[m][2], 3) for m in stored}


@pytest.mark.usefixtures("prefect_server")
def test_each_stage_records_its_time_and_a_rerun_records_reused(tmp_path, tiny_clip_dir, tiny_dino_dir):
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from storage import Catalog
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=2)), shard_size=4)  # 6 images, 2 shards
    fields = dict(dataset="shapes", model=str(tiny_clip_dir), methods=["clip_e", "abs"], db=db, attention_model=str(tiny_dino_dir), n_crops=3)
    first = evaluate(**fields)
    query = f"SELECT stage, status, units_computed, units_total, seconds, images_per_s, device, peak_rss_mb FROM stage_time WHERE run_id = '{first['run_id']}' ORDER BY stage"
    _, rows, _ = Catalog(db).query(query)
    by_stage = {r[0]: r[1:] for r in rows}
    assert set(by_stage) == {"text", "attention", "encode", "score"}
    assert by_stage["text"][:3] == ("computed", 2, 2)  # CLIP-E's templates and ABS's descriptions: a text kind each
    for stage in ("attention", "encode", "score"):
        status, computed, total, seconds, ips, device, rss = by_stage[stage]
        assert (status, computed, total, device) == ("computed", 2, 2, "cpu") and seconds > 0 and ips == pytest.approx(6 / seconds, rel=0.01)
        assert rss > 50  # MiB: a Python process with torch loaded
    second = evaluate(**fields)  # the same run again: every stage finds its units stored
    assert second["run_id"] == first["run_id"]
    _, rows, _ = Catalog(db).query(query)
    assert {r[0]: (r[1], r[2], r[5]) for r in rows} == {stage: ("reused", 0, None) for stage in ("text", "attention", "encode", "score")}
