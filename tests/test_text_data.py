"""The text data the methods read at run time ships with glocal: `--text-dataset imagenet` works
from an installed wheel on a machine without ../shared, the shipped files are the released ones
(checked against ../shared where it exists), and GLOCAL_TEXT_DATA adds or replaces files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FROM_THE_WHEEL = """
import json, sys
import glocal
from glocal.paths import read_json, text_data
from glocal.text.dataset_text import text_inputs

names = read_json(text_data("classnames/imagenet.json"))
texts = text_inputs("imagenet", names)
print(json.dumps({"package": glocal.__file__, "classes": len(names), "templates": len(texts.templates),
                  "sentences": sum(map(len, texts.descriptions)), "clip_d": sum(map(len, texts.clip_d)),
                  "waffle": len(read_json(text_data("waffle_words.json")))}))
"""


def test_an_installed_wheel_reads_its_own_text_data_without_shared_or_the_checkout(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"),
                            str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("glocal-*.whl"))
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"  # no ../shared beside it, no checkout on the import path
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", FROM_THE_WHEEL], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["package"].startswith(str(site))
    # ImageNet: 1000 classes, the 80 CLIP-E templates, 70 CuPL sentences a class (the two duplicated names share theirs),
    # CLIP-D descriptors, and Waffle's 4330 words
    assert seen["classes"] == 1000 and seen["templates"] == 80 and seen["sentences"] == 70_000
    assert seen["clip_d"] > 1000 and seen["waffle"] == 4330


@pytest.mark.shared_data
def test_the_shipped_files_are_the_released_ones(shared):
    from glocal.paths import PACKAGED_TEXT, read_json

    files = [p for folder in ("classnames", "templates", "descriptions") for p in (shared / folder).rglob("*.json")]
    files.append(shared / "waffle_words.json")
    assert len(files) == 42
    for path in files:
        relative = path.relative_to(shared)
        shipped = PACKAGED_TEXT / f"{relative}.gz"
        assert read_json(shipped) == json.loads(path.read_text(encoding="utf-8")), relative
    assert (PACKAGED_TEXT / "PROVENANCE.md").exists()


def test_glocal_text_data_adds_and_replaces_files(tmp_path, monkeypatch):
    from glocal.paths import PACKAGED_TEXT, read_json, text_data
    from glocal.text.dataset_text import check_text_dataset, text_inputs

    mine = tmp_path / "text"
    (mine / "templates").mkdir(parents=True)
    (mine / "templates" / "pets.json").write_text(json.dumps(["a sketch of a {}.", "art of the {}."]))
    (mine / "templates" / "my_birds.json").write_text(json.dumps(["a photo of a {}, a bird."]))
    monkeypatch.setenv("GLOCAL_TEXT_DATA", str(mine))
    assert text_data("templates/pets.json") == mine / "templates" / "pets.json"  # replaced
    assert text_data("descriptions/cupl/pets.json").is_relative_to(PACKAGED_TEXT)  # the rest still shipped
    pets = text_inputs("pets", read_json(text_data("classnames/pets.json")))
    assert pets.templates == ["a sketch of a {}.", "art of the {}."] and sum(map(len, pets.descriptions)) == 37 * 30
    check_text_dataset("my_birds")  # added
    monkeypatch.delenv("GLOCAL_TEXT_DATA")
    with pytest.raises(ValueError, match="'my_birds': no CuPL, CLIP-D or template file for it; known: .*imagenet"):
        check_text_dataset("my_birds")


@pytest.mark.slow
def test_a_clone_without_shared_evaluates_with_the_shipped_imagenet_text(tmp_path):
    """#28's "Done when": a fresh clone in a folder with no ../shared, GLOCAL_TEXT_DATA unset,
    nothing installed beyond the test environment: `glocal eval` on generated images with
    --text-dataset imagenet and the text methods completes, and its JSON names the shipped files."""
    clone = tmp_path / "nowhere" / "glocal"
    cloned = subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], capture_output=True, text=True, timeout=120)
    if cloned.returncode != 0:
        pytest.skip(f"the checkout cannot be cloned here ({cloned.stderr.strip()[:200]})")
    assert not (clone.parent.parent / "shared").exists() and not (clone.parent / "shared").exists()
    # three photos in folders named by ImageNet classes: the shipped files describe them (a subset of
    # ImageNet's classes: CuPL and CLIP-D aligned by name and by index in the shipped class list)
    script = (
        "import sys, numpy as np; from pathlib import Path; from PIL import Image; from glocal.tiny import build_tiny_clip\n"
        "for i, name in enumerate(['tench', 'goldfish', 'great white shark']):\n"
        "    Path('images', name).mkdir(parents=True)\n"
        "    Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(Path('images', name, '1.png'))\n"
        "build_tiny_clip('tiny-clip')\n"
        "from app.cli import main\n"
        "sys.exit(main(['eval', 'images', '--model', 'tiny-clip', '--text-dataset', 'imagenet', "
        "'--methods', 'clip,clip_e,cupl,clip_d,waffle,wca', '--n-crops', '2', '--output', 'r.json', '--db', 'ws/glocal.duckdb']))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "GLOCAL_TEXT_DATA"}
    env.update(PYTHONPATH=str(clone), HF_HUB_OFFLINE="1", GLOCAL_QUIET="1")
    done = subprocess.run([sys.executable, "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((clone / "r.json").read_text())
    assert {r["method"] for r in result["results"]} == {"clip", "clip_e", "cupl", "clip_d", "waffle", "wca"}
    shipped = clone / "glocal" / "text" / "data"
    assert result["text_files"] == {"cupl": str(shipped / "descriptions/cupl/imagenet.json.gz"),
                                    "clip_d": str(shipped / "descriptions/clip_d/imagenet.json.gz"),
                                    "templates": str(shipped / "templates/imagenet.json.gz")}


def test_a_subset_of_imagenets_classes_gets_their_shipped_descriptions():
    """A folder of some ImageNet classes, named as the shipped list names them: CLIP-D's file (keyed
    by another name list) is aligned through each class's index; CuPL by name."""
    from glocal.paths import read_json, text_data
    from glocal.text.dataset_text import text_inputs

    names = read_json(text_data("classnames/imagenet.json"))
    full = text_inputs("imagenet", names)
    picked = [2, 0, 517]
    subset = text_inputs("imagenet", [names[i] for i in picked])
    assert subset.clip_d == [full.clip_d[i] for i in picked]
    assert subset.descriptions == [full.descriptions[i] for i in picked]
    assert not any("keys given for" in note for note in subset.notes)
