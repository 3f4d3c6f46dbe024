"""Published accuracies as data: the ABS paper's Tables 1, 2, 3, 8 and 10, as printed.

``abs.json`` keeps each table in the paper's shape (one list of values per row, one
(dataset, backbone) pair per column) so it can be checked against the paper line by line;
:func:`published` flattens it to (dataset, backbone, method) -> accuracy in percent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("abs.json")


@dataclass(frozen=True)
class PublishedTable:
    table: str
    title: str
    source: str  # the paper and its table number
    columns: list[tuple[str, str]]  # (dataset id, backbone label) in the paper's column order
    values: dict[tuple[str, str, str], float]  # (dataset, backbone, method) -> top-1 %

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for _, _, m in self.values))

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(d for d, _ in self.columns))

    @property
    def backbones(self) -> list[str]:
        return list(dict.fromkeys(b for _, b in self.columns))


@lru_cache
def _raw() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def table_ids() -> list[str]:
    return list(_raw()["tables"])


def published(table: str) -> PublishedTable:
    raw = _raw()
    try:
        spec = raw["tables"][str(table)]
    except KeyError:
        raise ValueError(f"no published table {table!r}; tables: {', '.join(table_ids())}") from None
    ids = spec.get("method_ids", {})
    columns = [tuple(c) for c in spec["columns"]]
    values = {}
    for row, numbers in spec["rows"].items():
        for (dataset, backbone), value in zip(columns, numbers):
            values[(dataset, backbone, ids.get(row, row))] = value
    return PublishedTable(str(table), spec["title"], f"{raw['source']}, {spec['paper_table']}", columns, values)


def comparison_rows(comparison: dict) -> list[dict]:
    """A stored reproduction's cells (``Catalog.reproduction``) plus, per (backbone, method), the
    measured mean over the datasets when the table has an "average" column and every one of its
    datasets was measured (else None beside the published average)."""
    cells = list(comparison["cells"])
    pub = published(comparison["table"])
    if "average" not in pub.datasets:
        return cells
    wanted = [d for d in pub.datasets if d != "average"]
    groups: dict[tuple, dict] = {}
    for c in cells:
        groups.setdefault((c["backbone"], c["method"]), {})[c["dataset"]] = c["measured"]
    for (backbone, method), measured in groups.items():
        complete = all(measured.get(d) is not None for d in wanted)
        cells.append({"dataset": "average", "backbone": backbone, "method": method, "run_id": None, "images": None, "measured_std": None,
                      "form": next((c.get("form") for c in comparison["cells"] if (c["backbone"], c["method"]) == (backbone, method)), None),
                      "measured": sum(measured[d] for d in wanted) / len(wanted) if complete else None,
                      "published": pub.values.get(("average", backbone, method))})
    return cells


def formatted(cell: dict) -> tuple[str, str, str, str]:
    """A comparison row's (images, measured %, published %, difference) as printed; "-" where a
    value is missing (no images count: empty)."""
    measured, pub, std = cell["measured"], cell["published"], cell.get("measured_std")
    return ("" if cell["images"] is None else str(cell["images"]),
            "-" if measured is None else f"{measured:.2f}" + (f"±{std:.2f}" if std is not None else ""),
            "-" if pub is None else f"{pub:.2f}",
            f"{measured - pub:+.2f}" if measured is not None and pub is not None else "-")
