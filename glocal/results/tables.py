"""Rows out of the command line: an aligned table for people, CSV or JSON for scripts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

FORMATS = ("table", "csv", "json")


def format_for(fmt: str | None, output: str | None) -> str:
    """The format asked for, else the output file's extension (.csv, .json), else a table."""
    if fmt:
        return fmt
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    return suffix if suffix in ("csv", "json") else "table"


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """``rows`` as ``fmt``: "table" (columns padded to their widest cell), "csv" (RFC 4180, with a
    header), "json" (a list of objects, one per row)."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], indent=1, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    cells = [columns] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in cells)


def emit(columns: list[str], rows: list[tuple], fmt: str | None, output: str | None) -> str | None:
    """Print the rows, or write them to ``output`` (format from its extension unless given);
    returns the path written, if any."""
    text = render(columns, rows, format_for(fmt, output))
    if output is None:
        print(text, end="")
        return None
    Path(output).write_text(text, encoding="utf-8")
    return output
