"""The published tables are the paper's numbers, unchanged."""

import re

import pytest

from glocal.published import published, table_ids

NUMBER = re.compile(r"^\d+(\.\d+)?$")


def test_spot_values_and_shapes():
    t1, t2, t8 = published("1"), published("2"), published("8")
    assert t1.values[("imagenet_a", "B/16", "abs")] == 61.80
    assert t1.values[("average", "L/14", "clip")] == 70.68
    assert t2.values[("pets", "B/16", "clip_e")] == 89.1
    assert t2.values[("places365", "L/14", "abs")] == 42.27
    assert t8.values[("imagenet", "GroupViT", "abs")] == 46.96
    assert published("10").values[("imagenet_a", "BLIP-2", "wca")] == 72.79
    assert published("3").values[("imagenet_r", "B/16", "TDA (Karmanov et al., 2024)")] == 80.24
    for table, methods, columns in (("1", 7, 18), ("2", 7, 18), ("8", 7, 3), ("10", 7, 2)):
        t = published(table)
        assert len(t.methods) == methods and len(t.columns) == columns and len(t.values) == methods * columns
    assert "ICML 2025, Table 8" in t8.source
    with pytest.raises(ValueError, match="no published table '4'"):
        published("4")


def test_every_value_is_printed_in_the_paper(shared):
    """Each row (Tables 1-3) or column (Tables 8, 10, printed transposed) is a line of the paper."""
    text = (shared.parent / "papers" / "ABS-attention-based-selection.txt").read_text().replace("\xa0", " ")
    printed = set()
    for line in text.splitlines():
        numbers = tuple(float(tok) for tok in line.split() if NUMBER.match(tok))
        for start in range(len(numbers)):
            printed.add(numbers[start:])
    for table in table_ids():
        t = published(table)
        if table in ("8", "10"):
            for dataset, backbone in t.columns:
                assert tuple(t.values[(dataset, backbone, m)] for m in t.methods) in printed, (table, backbone)
        else:
            for method in t.methods:
                assert tuple(t.values[(d, b, method)] for d, b in t.columns) in printed, (table, method)
