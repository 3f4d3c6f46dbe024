"""What a user sees, from the installed command in a shell: results on stdout (so `> out.txt`
keeps them), Prefect's INFO lines off the console unless -v, and only the notes that apply to the
run, each once."""

import json
import subprocess

import pytest

from servers import BIN, clean_env

pytestmark = pytest.mark.slow


def test_eval_results_go_to_stdout_and_the_console_stays_quiet(tmp_path, tiny_clip_dir, shell_prefect_home):
    from glocal.data.demo_data import generate_images

    folder = generate_images(tmp_path / "shapes", per_class=2)
    env = clean_env(PREFECT_HOME=shell_prefect_home)
    common = [str(BIN / "glocal"), "eval", str(folder), "--model", str(tiny_clip_dir), "--db", str(tmp_path / "ws.duckdb")]

    with open(tmp_path / "out.txt", "w") as out:
        done = subprocess.run([*common, "--methods", "clip,clip_e"], stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "out.txt").read_text().splitlines()
    assert table[0].split() == ["run_id", "dataset", "model", "method", "images", "top1_pct", "top1_std_pct", "draws", "top5_pct",
                                "mean_per_class_recall_pct", "gflop_per_image"]
    assert [line.split()[3] for line in table[1:]] == ["clip", "clip_e"]
    assert "| INFO" not in done.stderr and "Finished in state" not in done.stderr, done.stderr
    assert "cupl" not in done.stderr  # no note about a description file this run does not read

    done = subprocess.run([*common, "--methods", "clip,cupl", "--format", "json", "-v"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert [r["method"] for r in result["results"]] == ["clip", "cupl"] and all(0 <= r["top1_pct"] <= 100 for r in result["results"])
    assert "| INFO" in done.stderr and "Finished in state Completed" in done.stderr  # -v: Prefect's lines back
    assert done.stderr.count("no description file") == 1, done.stderr
