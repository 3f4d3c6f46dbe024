"""The official forms beside glocal's: listed by `glocal presets`, rebuilt from stored runs."""

from glocal.config import OFFICIAL_PRESET, ABSConfig, get_preset
from glocal.run.plan import runs_from_configs


def test_presets_lists_each_official_form(capsys):
    from app.cli import main

    assert main(["presets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for method, preset in OFFICIAL_PRESET.items():
        assert "official (ABS tables)" in lines[preset] and lines[preset].split()[1] == method
    assert "averaging='embedding'" in lines["clip_d-official"] and "construction='official'" in lines["waffle-official"]
    assert "draws=20 draw_size=60" in lines["wca-official"] and "pairing='code'" in lines["abs-code"]
    assert "default" in lines["clip_d-paper"] and "(defaults)" in lines["clip_d-paper"]


def test_official_code_pairing_preset_matches_the_official_arguments():
    """main.py's defaults: --num_crops 50, --clip_crop_r1 0.6, --clip_crop_r2 0.9, --top_k 20, the
    feature centres among a fixed top 20, and map_index_14_to_16."""
    code = get_preset("abs-code")
    assert (code.n_crops, code.alpha, code.beta, code.top_k, code.feature_top_k, code.grid_map, code.pairing) == \
        (50, 0.6, 0.9, 20, 20, "official", "code")


def test_runs_stored_with_the_old_one_based_layer_rebuild_as_layer_id():
    """A run stored before layer_id kept ABS's 1-based ``layer`` (12 = the last block of 12):
    re-scoring it must crop the same block, now layer_id 11; CLIP-D stored without a config keeps
    its cosine averaging."""
    old = {"abs": {"type": "ABSConfig", **{k: v for k, v in ABSConfig().__dict__.items() if k != "layer_id"}, "layer": 12},
           "clip_d": {"type": "NoConfig"}}
    runs = {r.spec.name: r.config for r in runs_from_configs(old)}
    assert runs["abs"].layer_id == 11 and runs["clip_d"].averaging == "cosine"


def test_scoring_only_fields_are_marked_on_the_field_itself():
    """A config class says which of its fields only scoring reads (no side table to keep in step):
    those never change the features' key, every other field does."""
    from dataclasses import dataclass

    from glocal.config import WCAConfig, feature_fields, scoring

    @dataclass(frozen=True)
    class Toy:
        n_crops: int = 3
        temperature: float = scoring(0.1)

    assert feature_fields(Toy(temperature=0.5)) == feature_fields(Toy())
    assert feature_fields(Toy(n_crops=4)) != feature_fields(Toy())
    assert feature_fields(ABSConfig(soft_matching=False, use_raw=False, n_descriptions=7)) == feature_fields(ABSConfig())
    assert feature_fields(WCAConfig(draws=20, draw_size=60, form="paper")) == feature_fields(WCAConfig())
    assert feature_fields(ABSConfig(grid_map="centre")) != feature_fields(ABSConfig())
