import json

import pytest

from glocal.text import (
    DescriptionPolicy,
    align_descriptions,
    clip_d_sentence,
    clip_d_sentences,
    load_classnames,
    load_descriptions,
    load_templates,
    waffle_sentences,
)


def test_clip_d_sentence_rule():
    assert clip_d_sentence("cat", "a small animal") == "cat, which is a small animal"
    assert clip_d_sentence("cat", "an animal") == "cat, which is an animal"
    assert clip_d_sentence("cat", "used as a pet") == "cat, which is used as a pet"
    assert clip_d_sentence("cat", "has whiskers") == "cat, which has whiskers"
    assert clip_d_sentence("cat", "often sleeps") == "cat, which often sleeps"
    assert clip_d_sentence("cat", "can purr") == "cat, which can purr"
    assert clip_d_sentence("cat", "pointed ears") == "cat, which has pointed ears"
    assert clip_d_sentence("cat", "always hungry") == "cat, which is always hungry"  # plain startswith("a")


def test_imagenet_duplicates_error_names_classes_then_share(shared):
    classes = load_classnames(shared / "classnames" / "imagenet.json")
    cupl = load_descriptions(shared / "descriptions" / "cupl" / "imagenet.json")
    assert len(set(classes)) == 998 and len(cupl) == 998
    with pytest.raises(ValueError, match="'missile' at \\[657, 744\\].*'sunglasses' at \\[836, 837\\]"):
        align_descriptions(classes, cupl)
    aligned, report = align_descriptions(classes, cupl, DescriptionPolicy(on_duplicate="share"))
    assert len(aligned) == 1000 and aligned[657] == aligned[744] and aligned[836] == aligned[837]
    assert report.shared_duplicates == {"missile": [657, 744], "sunglasses": [836, 837]}
    assert all(len(x) == 70 for x in aligned)


def test_imagenet_clip_d_needs_its_own_keys(shared):
    classes = load_classnames(shared / "classnames" / "imagenet.json")
    clip_d = load_descriptions(shared / "descriptions" / "clip_d" / "imagenet.json")
    keys = json.loads((shared / "classnames" / "imagenet_descriptor_keys.json").read_text())
    with pytest.raises(ValueError, match="duplicate"):
        align_descriptions(classes, clip_d)
    aligned, report = align_descriptions(classes, clip_d, keys=keys)
    assert aligned[27] == clip_d["eft"] and aligned[744] == clip_d["projectile"]
    assert aligned[657] != aligned[744]  # the key list tells the two missiles apart
    assert not report.lines()


def test_places365_clip_d_key_mismatch(shared):
    classes = load_classnames(shared / "classnames" / "places365.json")
    clip_d = load_descriptions(shared / "descriptions" / "clip_d" / "places365.json")
    with pytest.raises(ValueError) as err:
        align_descriptions(classes, clip_d, DescriptionPolicy(on_duplicate="share"))
    message = str(err.value)
    assert "219 of 365 classes" in message and "'airplane cabin'" in message and "match='position'" in message
    # by position the keys line up, and the file's one empty list ("corn_field") surfaces
    with pytest.raises(ValueError, match="'corn field'"):
        align_descriptions(classes, clip_d, DescriptionPolicy(match="position"))
    aligned, report = align_descriptions(classes, clip_d, DescriptionPolicy(match="position", on_empty="classname"))
    assert report.fell_back_empty == ["corn field"] and aligned[classes.index("corn field")] == ["corn field"]
    assert aligned[1] == clip_d["airplane_cabin"]
    # the three "arena" classes keep their own descriptors by position
    arenas = [i for i, c in enumerate(classes) if c == "arena"]
    assert len({tuple(aligned[i]) for i in arenas}) == 3
    # normalisation alone fixes the underscore keys but not the "-outdoor" suffixes
    with pytest.raises(ValueError, match="no descriptions for"):
        align_descriptions(classes, clip_d, DescriptionPolicy(match="normalized", on_duplicate="share"))


def test_food101_empty_clip_d_list(shared):
    classes = load_classnames(shared / "classnames" / "food101.json")
    clip_d = load_descriptions(shared / "descriptions" / "clip_d" / "food101.json")
    empty = sorted(c for c in classes if not clip_d.get(c))
    assert empty
    with pytest.raises(ValueError, match=f"empty description list.*{empty[0]!r}"):
        align_descriptions(classes, clip_d)
    aligned, report = align_descriptions(classes, clip_d, DescriptionPolicy(on_empty="classname"))
    assert sorted(report.fell_back_empty) == empty
    i = classes.index(empty[0])
    assert aligned[i] == [empty[0]]
    sentences = clip_d_sentences(classes, aligned)
    assert sentences[i] == [empty[0]]  # "{c}" alone, per methods.md
    assert sentences[0][0].startswith(classes[0] + ", which")


def test_missing_key_fallback_policy():
    aligned, report = align_descriptions(["cat", "dog"], {"cat": ["x"]}, DescriptionPolicy(on_missing="classname"))
    assert aligned == [["x"], ["dog"]] and report.fell_back_missing == ["dog"]
    with pytest.raises(ValueError, match="'dog'"):
        align_descriptions(["cat", "dog"], {"cat": ["x"]})


def test_waffle_counts_and_seed(shared):
    words = json.loads((shared / "waffle_words.json").read_text())
    a = waffle_sentences(["cat", "dog"], [3, 5], words, seed=1)
    assert [len(x) for x in a] == [3, 5]
    assert a == waffle_sentences(["cat", "dog"], [3, 5], words, seed=1)
    assert a != waffle_sentences(["cat", "dog"], [3, 5], words, seed=2)
    assert all(s.startswith("cat, which") for s in a[0])


def test_loaders_report_bad_files(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text('["a photo of {}", "no slot"]')
    with pytest.raises(ValueError, match="exactly one"):
        load_templates(bad)
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_descriptions(tmp_path / "d.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_classnames(tmp_path / "nope.json")


def test_shared_templates_load(shared):
    assert len(load_templates(shared / "templates" / "imagenet.json")) == 80
