"""`glocal reproduce` end to end on miniature dataset layouts with tiny random models: the numbers
are meaningless; the table's shape, the skip notes and the published values are what is checked."""

import json
import re

import pytest

from glocal.published import published
from glocal.data.miniature import build

pytestmark = pytest.mark.usefixtures("prefect_server")

METHODS = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "abs"]
# the form each cell of a default (official) reproduction states, --n-crops 3 setting WCA's pool
FORMS = {"clip": "standard", "clip_e": "standard", "cupl": "standard", "abs": "abs-code", "clip_d": "clip_d-official",
         "waffle": "waffle-official", "wca": "wca-official (pool 3, 20 draws of 60)"}


@pytest.fixture(scope="module")
def data_root(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for dataset, folder in (("cub", "CUB_200_2011"), ("dtd", "dtd"), ("pets", "oxford-iiit-pet"), ("imagenet_a", "imagenet-a"),
                            ("imagenet_v2", "imagenetv2-matched-frequency-format-val")):
        build(dataset, root / folder, shared)
    return root


def test_table_2_cli_with_report(data_root, tiny_clip_dir, tiny_dino_dir, tmp_path):
    from flows.reproduce import format_reproduction
    from app.cli import main
    from storage import Catalog

    db = str(tmp_path / "ws" / "glocal.duckdb")
    (tmp_path / "ws").mkdir()
    report = tmp_path / "repro.html"
    assert main(["reproduce", "--table", "2", "--data-root", str(data_root), "--backbones", f"B/16={tiny_clip_dir}",
                 "--attention-model", str(tiny_dino_dir), "--n-crops", "3", "--db", db, "--report", str(report),
                 "--output", str(tmp_path / "repro.json")]) == 0
    written = json.loads((tmp_path / "repro.json").read_text())
    assert len(written) == 3 * len(METHODS) and {r["form"] for r in written} == set(FORMS.values())
    # (capsys would bind Prefect's console handler to a stream closed after this test: read the catalog)
    catalog = Catalog(db)
    repro_id = catalog.query("SELECT repro_id FROM reproductions")[1][0][0]
    rep = catalog.reproduction(repro_id)
    out = format_reproduction(rep)  # what the command prints
    for absent, folders in (("imagenet", "imagenet/val"), ("food101", "food-101"), ("places365", "places365")):
        assert re.search(rf"note: {absent}: skipped, not found under {re.escape(str(data_root))} \(looked for {re.escape(folders)}", out)
    pub = published("2")
    cells = {(c["dataset"], c["backbone"], c["method"]): c for c in rep["cells"]}
    assert set(cells) == {(d, "B/16", m) for d in ("cub", "dtd", "pets") for m in METHODS}
    accuracy = {(r, m): top1 for r, _, _, m, _, top1 in catalog.accuracy()}
    for key, c in cells.items():
        assert c["published"] == pub.values[key]  # unchanged, e.g. cub/B/16/abs = 61.01
        assert c["measured"] == pytest.approx(100 * accuracy[(c["run_id"], c["method"])])
        assert c["images"] == {"cub": 3, "dtd": 3, "pets": 3}[c["dataset"]]
        measured = f"{c['measured']:.2f}" + (f"±{c['measured_std']:.2f}" if c["method"] == "wca" else "")
        line = f"{key[0]:16s} B/16      {key[2]:8s} {c['images']:6d} {measured:>12s} {c['published']:9.2f} {c['measured'] - c['published']:+7.2f}  {FORMS[key[2]]}"
        assert line.rstrip() in out.splitlines()
    assert cells[("cub", "B/16", "abs")]["published"] == 61.01
    # the official forms ran: WCA's 20 draws (over the --n-crops pool of 3) are in draw_accuracy
    draws = catalog.query(f"SELECT count(*) FROM draw_accuracy WHERE run_id = '{cells[('cub', 'B/16', 'wca')]['run_id']}'")[1][0][0]
    assert draws == 20
    configs = catalog.run_configs(cells[("cub", "B/16", "abs")]["run_id"])
    assert configs["abs"]["pairing"] == "code" and configs["clip_d"]["averaging"] == "embedding"
    assert configs["waffle"]["construction"] == "official" and configs["wca"]["n_crops"] == 3
    assert f"B/16: measured with {tiny_clip_dir}, not the table's checkpoint openai/clip-vit-base-patch16" in out

    page = report.read_text()
    body = page.split('<table class="reproduction">')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + 3 * len(METHODS)  # header + one row per cell; no average column in Table 2
    assert "ICML 2025, Table 2" in page and "food101: skipped" in page and "<th>form</th>" in page and "abs-code" in body


def test_table_1_restricts_imagenet_a_and_leaves_the_average_open(data_root, tiny_clip_dir, tmp_path, shared):
    from flows.reproduce import reproduce
    from storage import Catalog

    db = str(tmp_path / "glocal.duckdb")
    result = reproduce(table="1", data_root=str(data_root), db=db, backbones={"B/32": str(tiny_clip_dir)},
                       methods=["clip", "cupl"], limit=4)
    pub = published("1")
    measured = result["cells"]
    assert {(c["dataset"], c["method"]) for c in measured} == {(d, m) for d in ("imagenet_a", "imagenet_v2") for m in ("clip", "cupl")}
    assert all(c["images"] == 4 for c in measured)
    avg = [line for line in result["table"].splitlines() if line.startswith("average")]
    assert len(avg) == 2 and all(line.split()[3] == "-" for line in avg)  # measured average needs all five datasets
    assert f"{pub.values[('average', 'B/32', 'cupl')]:.2f}" in avg[1]
    assert len([n for n in result["notes"] if "skipped" in n]) == 3

    catalog = Catalog(db)
    subset = set(catalog.dataset("imagenet_a-n4")["class_subset"])
    assert subset == set(json.loads((shared / "classnames" / "imagenet_subsets.json").read_text())["imagenet_a"])
    run_a = next(c["run_id"] for c in measured if c["dataset"] == "imagenet_a")
    _, rows, _ = catalog.query(f"SELECT prediction, top5 FROM predictions WHERE run_id = '{run_a}'")
    assert rows and all(p in subset and set(t) <= subset for p, t in rows)  # 200-class logits only
    assert catalog.dataset("imagenet_v2-n4")["class_subset"] is None  # V2 scores all 1000 classes


def test_bad_requests_fail_before_any_work(data_root, tmp_path, shared):
    from flows.reproduce import plan_reproduction

    with pytest.raises(ValueError, match="table '3' cannot be reproduced"):
        plan_reproduction("3", str(data_root), None, None, None)
    with pytest.raises(ValueError, match="no backbone column \\['B/8'\\]; its backbones: B/32, B/16, L/14"):
        plan_reproduction("2", str(data_root), {"B/8": None}, ["clip"], None)
    with pytest.raises(ValueError, match="no row for method\\(s\\) \\['lgca'\\]"):
        plan_reproduction("2", str(data_root), None, ["lgca"], None)
    with pytest.raises(ValueError, match="ABS needs --attention-model"):
        plan_reproduction("2", str(data_root), None, None, None)
    with pytest.raises(ValueError, match="none of table 8's datasets is present"):
        plan_reproduction("8", str(tmp_path), None, ["clip"], None)
    broken = tmp_path / "broken"
    build("dtd", broken / "dtd", shared)
    (broken / "dtd" / "labels" / "test1.txt").unlink()
    with pytest.raises(Exception, match="test1.txt: missing"):
        plan_reproduction("2", str(broken), None, ["clip"], None)
    with pytest.raises(ValueError, match="table '10' cannot be reproduced \\(Table 10 needs BLIP-2"):
        plan_reproduction("10", str(data_root), None, ["clip"], None)
    plan = plan_reproduction("1", str(data_root), {"L/14": None}, ["clip"], None)
    assert plan.backbones == {"L/14": "openai/clip-vit-large-patch14"} and set(plan.present) == {"imagenet_a", "imagenet_v2"}


def test_official_wca_pool_follows_the_dataset():
    """WCA's official configs: a pool of 60 on ImageNet, 100 elsewhere (ImageNet-V2 included);
    --n-crops sets every pool; the glocal forms are the default presets."""
    from flows.reproduce import cell_forms

    presets, overrides, labels = cell_forms(["wca", "clip_d", "clip"], "official", "imagenet", None)
    assert presets == {"wca": "wca-official", "clip_d": "clip_d-official"} and overrides == {"wca": {"n_crops": 60}}
    assert labels == {"wca": "wca-official (pool 60, 20 draws of 60)", "clip_d": "clip_d-official", "clip": "standard"}
    assert cell_forms(["wca"], "official", "imagenet_v2", None)[1] == {"wca": {"n_crops": 100}}
    assert cell_forms(["wca"], "official", "cub", 7)[1] == {"wca": {"n_crops": 7}}
    presets, overrides, labels = cell_forms(["wca", "abs", "waffle"], "glocal", "cub", None)
    assert presets == {"wca": "wca-code", "abs": "abs-paper", "waffle": "waffle-glocal"} and overrides == {}
