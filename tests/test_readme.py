"""The README's offline blocks, run as a user would type them: from a checkout whose ../shared is
the shared data, each `glocal ...` line through the CLI, every one succeeding."""

import json
import re
import shlex
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.usefixtures("prefect_server")

README = Path(__file__).resolve().parents[1] / "README.md"


def offline_blocks() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    return [[line for line in block.splitlines() if line.startswith("glocal ")]
            for block in re.findall(r"<!-- readme-test: offline -->\n```bash\n(.*?)```", text, flags=re.S)]


def test_the_readme_has_an_offline_block():
    blocks = offline_blocks()
    assert blocks and all(blocks)


def test_offline_pipeline_block_runs_as_written(shared, tmp_path, monkeypatch):
    from app.cli import main

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(shared.parent)  # ../shared from the checkout, as beside a real clone
    monkeypatch.chdir(checkout)
    monkeypatch.delenv("GLOCAL_DB", raising=False)
    for line in offline_blocks()[0]:
        assert main(shlex.split(line)[1:]) == 0, line
    with duckdb.connect("glocal.duckdb", read_only=True) as con:
        methods = {m for (m,) in con.execute("SELECT DISTINCT method FROM accuracy").fetchall()}
    assert {"clip", "abs", "wca", "lgca", "waffle"} <= methods
    results = json.loads((checkout / "results.json").read_text())
    assert [r["method"] for r in results["results"]] == ["clip", "cupl", "wca"] and results["dataset"] == "imagenet-sample"
    assert 'class="ablation"' in (checkout / "ablation.html").read_text()  # the Table 4 sweep's report
    cells = (checkout / "table2.csv").read_text().splitlines()
    assert cells[0].startswith("repro_id,dataset,backbone,method") and len(cells) == 1 + 3 * 7  # cub, dtd, pets x 7 methods
