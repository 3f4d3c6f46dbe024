"""Every registered crop kind keeps the same contract (parametrised over the registry): its batched
engine part gives the reference path's boxes and features, its stored columns reload to the same
features, it owns no other kind's column, and its features' key follows its own config only."""

import dataclasses

import pytest
import torch
from PIL import Image

from glocal.encode.engine import EngineConfig, encode_features
from glocal.encode.extract import extract_features
from glocal.kinds import CROP_KINDS
from glocal.run.plan import MethodRun, feature_parts, with_crops

FEATURE_TOLERANCE = 0.02  # as tests/test_engine.py: unit-norm features from crops within two 8-bit levels


def images():
    g = torch.Generator().manual_seed(3)
    return [Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()) for w, h in ((97, 61), (45, 130), (64, 64))]


def small_config(kind):
    """The kind's default config with 4 crops where it has a crop count (LGCA's K x T kept within it)."""
    return with_crops(MethodRun(None, kind.config()), 4).config if kind.config is not None else None


def run_inputs(kind, tiny_clip):
    config = small_config(kind)
    return dict(attention_maps=torch.rand(3, 14, 14, generator=torch.Generator().manual_seed(4)),
                class_embeddings=torch.nn.functional.normalize(torch.randn(5, tiny_clip.embed_dim, generator=torch.Generator().manual_seed(5)), dim=-1),
                **({kind.config_key: config} if config is not None else {}))


def flat(value) -> list[torch.Tensor]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", list(CROP_KINDS))
def test_engine_and_reference_agree_box_for_box(name, tiny_clip):
    kind, ids = CROP_KINDS[name], ["a", "b", "c"]
    kwargs = run_inputs(kind, tiny_clip)
    reference, ref_record = extract_features(tiny_clip, images(), ids, {"full", name}, batch_size=8, **kwargs)
    engine, record = encode_features(tiny_clip, images(), ids, {"full", name}, engine=EngineConfig(batch_size=8), **kwargs)
    assert set(record.outputs) == set(ref_record.outputs) == {name}
    assert record.boxes.keys() == ref_record.boxes.keys() and record.boxes
    for column, per_image in ref_record.boxes.items():
        ref_flat = [b for boxes in per_image for b in flat(boxes)]
        eng_flat = [b for boxes in record.boxes[column] for b in flat(boxes)]
        assert len(ref_flat) == len(eng_flat) and all(torch.equal(a, b) for a, b in zip(ref_flat, eng_flat)), column
    for a, b in zip(flat(reference.need(name)), flat(engine.need(name))):
        assert a.shape == b.shape and a.shape[0] == 3
        assert (a - b).abs().max().item() < FEATURE_TOLERANCE


@pytest.mark.parametrize("name", list(CROP_KINDS))
def test_stored_columns_reload_to_the_same_features(name, tiny_clip):
    kind, ids = CROP_KINDS[name], ["a", "b", "c"]
    features, record = extract_features(tiny_clip, images(), ids, {"full", name}, batch_size=8, **run_inputs(kind, tiny_clip))
    stored = kind.stored(record.outputs[name])
    owned = {column: value for column, value in stored.items() if kind.owns(column)}
    assert owned and all(value.is_floating_point() for value in owned.values())  # features: float16 columns
    assert all(not value.is_floating_point() for column, value in stored.items() if column not in owned)  # geometry: int32 columns
    assert all(len(value) == 3 for value in stored.values())  # one row per image
    reloaded = kind.load(owned)
    assert all(torch.equal(a, b) for a, b in zip(flat(reloaded), flat(features.need(name))))
    others = [other for other in CROP_KINDS.values() if other.name != name]
    assert not [(other.name, column) for other in others for column in owned if other.owns(column)]


@pytest.mark.parametrize("name", [n for n, kind in CROP_KINDS.items() if kind.config is not None])
def test_a_kind_s_key_follows_its_feature_fields_only(name):
    """Changing a field that decides a kind's crops changes that kind's key (and the keys of kinds
    that share its config), never the whole image's; a scoring-only field changes no key."""
    kind = CROP_KINDS[name]
    config = kind.config()
    configs = {k.config_key: k.config() for k in CROP_KINDS.values() if k.config is not None}
    needs = {"full", *CROP_KINDS}
    before = feature_parts(configs, needs, ("d", "fp", "m"), "attention", "text")
    deciding = next(f for f in dataclasses.fields(config) if f.name == "seed")  # every built-in kind's crops are seeded
    after = feature_parts({**configs, kind.config_key: dataclasses.replace(config, **{deciding.name: config.seed + 1})}, needs,
                          ("d", "fp", "m"), "attention", "text")
    changed = {k for k in needs if before[k] != after[k]}
    assert changed == {k.name for k in CROP_KINDS.values() if k.config_key == kind.config_key}
    # a scoring-only number or switch, changed (ViewsConfig has none: ZERO's and MTA's scoring
    # fields live in their configs, which the plan projects onto it; tests/test_tta_methods.py)
    f = next((f for f in dataclasses.fields(config) if f.metadata.get("scoring_only") and isinstance(getattr(config, f.name), (bool, int, float))), None)
    if f is None:
        return
    value = getattr(config, f.name)
    other = (not value) if isinstance(value, bool) else value + 1
    changed_config = dataclasses.replace(config, **{f.name: other})
    assert changed_config != config
    unchanged = feature_parts({**configs, kind.config_key: changed_config}, needs, ("d", "fp", "m"), "attention", "text")
    assert unchanged == before


def test_a_plugin_kind_keeps_the_same_contract(tiny_clip):
    """The test-only grid kind (tests/grid_kind.py), registered for this test, through the same checks."""
    from plugins import plugin

    with plugin("grid_kind"):
        test_engine_and_reference_agree_box_for_box("grid", tiny_clip)
        test_stored_columns_reload_to_the_same_features("grid", tiny_clip)
    assert "grid" not in CROP_KINDS


def test_a_plugin_that_cannot_be_imported_is_named_with_the_remedy(monkeypatch):
    from glocal.plugins import load_plugins

    monkeypatch.setenv("GLOCAL_PLUGINS", " grid_kind_typo ")
    with pytest.raises(ModuleNotFoundError, match="GLOCAL_PLUGINS names 'grid_kind_typo', which is not importable here; put its folder on PYTHONPATH"):
        load_plugins()
