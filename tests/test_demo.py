import torch

from glocal.run.demo import run_demo
from glocal.methods import method_names


def test_demo_on_generated_images_scores_every_method(tmp_path, tiny_clip_dir, tiny_dino_dir):
    result = run_demo(
        images=str(_generated(tmp_path)), model=str(tiny_clip_dir),
        attention_model=str(tiny_dino_dir), methods=method_names(), limit=12, n_crops=6, workdir=tmp_path,
    )
    assert result["scored"] == 12 and set(result["scores"]) == set(method_names())
    for scores in result["scores"].values():
        assert scores.shape == (12, 3) and torch.isfinite(scores).all()


def test_demo_skips_bad_images(tmp_path, tiny_clip_dir, tiny_dino_dir):
    root = _generated(tmp_path)
    (root / "red circle" / "broken.png").write_text("not a png")
    result = run_demo(images=str(root), model=str(tiny_clip_dir), attention_model=str(tiny_dino_dir),
                      methods=["clip", "abs"], limit=100, n_crops=4, workdir=tmp_path)
    assert [image_id for image_id, _ in result["skipped"]] == ["red circle/broken.png"]
    assert result["scored"] == 12


def test_demo_on_shared_sample(shared, tmp_path, tiny_clip_dir):
    result = run_demo(model=str(tiny_clip_dir), methods=["clip", "cupl", "abs"], limit=6, n_crops=4, workdir=tmp_path)
    assert result["scored"] == 6 and result["scores"]["abs"].shape == (6, 6)


def test_cli_unknown_method_is_a_clear_error(capsys):
    from app.cli import main

    assert main(["demo", "--methods", "clip,nope"]) == 2
    assert "unknown method(s) ['nope']" in capsys.readouterr().err


def _generated(tmp_path):
    from glocal.data.demo_data import generate_images

    return generate_images(tmp_path / "gen")
