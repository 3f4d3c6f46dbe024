import json
import re

import pytest

from glocal.text.files import (
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


def test_official_waffle_shapes_follow_construct_random_by_hand():
    """construct_random's lengths, computed by hand. ["red fox", "cat"]: words per name 2, 1 ->
    round(1.5) = 2 (half to even); mean word length (3 + 3)/2 -> 3; spaces 1, 0 -> round(0.5) + 1
    = 1 group; longest word 3 -> ceil(3) = 3, 3 += 1 - 3 % 1 -> 4: pattern "aaaa"."""
    from glocal.text.waffle import official_shapes

    assert official_shapes(["red fox", "cat"]) == {"words": 2, "word_length": 3, "pattern": "aaaa"}
    # ["a b", "c d"]: 1 space each -> 2 groups; longest word 1 -> 1 += 2 - 1 % 2 -> 2: "a a"
    assert official_shapes(["a b", "c d"]) == {"words": 2, "word_length": 1, "pattern": "a a"}
    # "great white shark" (3 words, 2 spaces, longest 5), "tiger shark" (2, 1, 5): words round(2.5)
    # = 2; length round((13/3 + 5)/2) = round(4.67) = 5; groups round(1.5) + 1 = 3; 5 += 3 - 5 % 3 -> 6
    assert official_shapes(["great white shark", "tiger shark"]) == {"words": 2, "word_length": 5, "pattern": "aa aa aa"}


def test_official_waffle_sentences_are_one_shared_set(tmp_path):
    """15 random-word and 15 random-character descriptors shared by every class, alternating,
    words cut to the names' mean word length, characters from the CLIP-D descriptors, sentence
    "A photo of a {c}, which ...."; glocal's own construction differs per class."""
    from glocal.text.waffle import waffle_set

    words = ["zebra", "apple", "kiwi", "mango", "plum"]
    words_path = tmp_path / "words.json"
    words_path.write_text(json.dumps(words))
    names = ["red fox", "cat"]
    clip_d = [["has fur"], ["a tail."]]
    sets = waffle_set(names, clip_d, "official", 1, words_path)
    assert [len(s) for s in sets] == [30, 30]
    strip = [[s.replace(f"A photo of a {name}, ", "", 1) for s in ss] for name, ss in zip(names, sets)]
    assert strip[0] == strip[1]  # the same descriptors for every class
    assert all(s.startswith("A photo of a ") and s.endswith(".") for ss in sets for s in ss)
    cut = {w[:3] for w in words}
    for k, sentence in enumerate(strip[0]):
        descriptor = re.sub(r"^which (is|has) ", "", sentence)[:-1]
        if k % 2 == 0:  # two random words of 3 letters
            assert len(descriptor.split(" ")) == 2 and set(descriptor.split(" ")) <= cut, sentence
        else:  # "aaaa": four characters from {a,f,h,i,l,r,s,t,u} (the descriptors' letters, no space/comma/period)
            assert len(descriptor) == 4 and set(descriptor) <= set("afhilrstu"), sentence
        # make_descriptor_sentence: "which is" exactly for descriptors starting with "a"
        assert sentence.startswith("which is ") == descriptor.startswith("a"), sentence
    assert sets == waffle_set(names, clip_d, "official", 1, words_path)
    assert sets != waffle_set(names, clip_d, "official", 2, words_path)
    glocal = waffle_set(names, [["has fur", "x"], ["a tail."]], "glocal", 1, words_path)
    assert [len(s) for s in glocal] == [2, 1]


def test_official_waffle_character_descriptor_groups_are_comma_separated():
    from glocal.text.waffle import official_descriptors

    descriptors = official_descriptors(["a b", "c d"], [["xyz"]], ["w"], 1)
    assert all(re.fullmatch(r"[xyz], [xyz]", d) for d in descriptors[1::2]), descriptors[1::2]

