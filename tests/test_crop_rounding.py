"""Centre-crop rounding (#28 item 7): transformers' processors crop at (H - S) // 2, torchvision's
CenterCrop (OpenAI's clip, hence the official ABS / WCA code; open_clip; CLIP_benchmark) at
round((H - S) / 2), halves to even. The run option, its "auto" resolution from official presets,
and its place in the content keys."""

import numpy as np
import pytest
import torch
from PIL import Image

from glocal.backbones.preprocess import PreprocessSpec, centre_crop, centre_offset, clip_preprocess
from glocal.run.plan import plan_run
from glocal.run.request import RunRequest

# (extent - S, floor offset, torchvision's offset), worked by hand: they differ when H - S is odd
# and (H - S) // 2 is odd (3.5 -> 4, 5.5 -> 6), not when it is even (2.5 -> 2, 4.5 -> 4)
BY_HAND = [(0, 0, 0), (1, 0, 0), (3, 1, 2), (5, 2, 2), (7, 3, 4), (9, 4, 4), (11, 5, 6), (32, 16, 16), (75, 37, 38)]


@pytest.mark.parametrize("excess, floor, rounded", BY_HAND)
def test_offsets_by_hand(excess, floor, rounded):
    assert centre_offset(224 + excess, 224, "floor") == floor
    assert centre_offset(224 + excess, 224, "round") == rounded
    array = np.array([224 + excess])
    assert centre_offset(array, 224, "round").tolist() == [rounded]  # the vectorised path of the batched crops


def test_the_roundings_cut_different_pixels_where_they_differ():
    array = (np.arange(231)[None, :, None] + np.zeros((224, 1, 3))).astype(np.uint8)  # 231 x 224, column i has value i
    image = Image.fromarray(array)
    assert np.array_equal(np.asarray(centre_crop(image, 224, "floor"))[0, 0], array[0, 3])
    assert np.array_equal(np.asarray(centre_crop(image, 224, "round"))[0, 0], array[0, 4])
    with pytest.raises(ValueError, match="unknown crop rounding 'up'"):
        centre_offset(231, 224, "up")


def _request(**fields):
    return RunRequest.of(dataset="d", model="m", methods=["clip", "abs"], attention_model="dino", **fields)


def test_auto_is_torchvision_rounding_when_a_method_runs_its_official_preset():
    assert plan_run(_request()).crop_rounding == "floor"
    assert plan_run(_request(presets={"abs": "abs-code"})).crop_rounding == "round"
    assert plan_run(_request(presets={"abs": "abs-paper"})).crop_rounding == "floor"
    assert plan_run(_request(presets={"abs": "abs-code"}, crop_rounding="floor")).crop_rounding == "floor"
    with pytest.raises(ValueError, match="--crop-rounding 'ceil': choose floor, round or auto"):
        plan_run(_request(crop_rounding="ceil"))


def test_rounding_is_part_of_the_image_keys_and_floor_keeps_the_old_ones():
    floor, rounded = plan_run(_request(crop_rounding="floor")), plan_run(_request(crop_rounding="round"))
    assert floor.image_model_key("model@1") == "model@1"  # keys of runs made before the option are unchanged
    args = ("d", "fp", "model@1", "attn", "text")
    assert floor.feature_parts(*args)["full"] != rounded.feature_parts(*args)["full"]
    assert floor.run_id("d", "fp", "model@1", "dino@1", "text") != rounded.run_id("d", "fp", "model@1", "dino@1", "text")
    assert floor.text_kind_keys("model@1", {"classnames": ["a"], "templates": ["{}"]}) == \
        rounded.text_kind_keys("model@1", {"classnames": ["a"], "templates": ["{}"]})  # text is not preprocessed


@pytest.mark.usefixtures("prefect_server")
def test_a_run_with_torchvision_rounding_encodes_other_pixels(tmp_path, tiny_clip_dir):
    """Photos whose resized long side leaves an odd excess with an odd half: the full-image
    features differ from the floor run's; an even excess gives the same features."""
    from runs import evaluate
    from storage import Catalog
    from tasks.ingest import ingest_folder

    rng = np.random.default_rng(1)
    for cls, (w, h) in (("odd", (63, 56)), ("even", (61, 56))):  # excess 7 (offsets 3 vs 4) and 5 (2 vs 2)
        (tmp_path / "images" / cls).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / cls / "1.png")
    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "sizes", str(tmp_path / "images"), shard_size=4)
    floor = evaluate(dataset="sizes", model=str(tiny_clip_dir), methods=["clip"], db=db)
    rounded = evaluate(dataset="sizes", model=str(tiny_clip_dir), methods=["clip"], db=db, crop_rounding="round")
    assert floor["run_id"] != rounded["run_id"] and floor["encode_key"] != rounded["encode_key"]
    catalog = Catalog(db)
    from storage import read_artifact

    def full(key):
        table = read_artifact(catalog.artifact_paths("encode", key)[0]).to_pydict()
        return {i: torch.tensor(f) for i, f in zip(table["image_id"], table["full"])}

    a, b = full(floor["encode_key"]), full(rounded["encode_key"])
    odd, even = [i for i in a if "odd" in i][0], [i for i in a if "even" in i][0]
    assert not torch.allclose(a[odd], b[odd], atol=1e-3)
    assert torch.equal(a[even], b[even])
    _, rows, _ = catalog.query(f"SELECT params->>'crop_rounding' FROM runs WHERE run_id = '{rounded['run_id']}'")
    assert rows == [("round",)]
