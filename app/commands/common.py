"""What every command shares: the parser class (defaults in the help), the workspace flag, the
output options, the value parsers, and the checks a run request passes before Prefect starts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

class HelpWithDefaults(argparse.HelpFormatter):
    """Help lines end with their default where there is one worth saying (not None / off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class GlocalParser(argparse.ArgumentParser):
    """Every glocal (sub)command's parser: defaults in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


def uses_workspace(parser: argparse.ArgumentParser, fn) -> None:
    """A command that reads or writes a workspace: its --db flag, and the function it runs."""
    parser.add_argument("--db", default=os.environ.get("GLOCAL_DB", "glocal.duckdb"),
                        help="workspace DuckDB file (default: $GLOCAL_DB or ./glocal.duckdb)")
    parser.set_defaults(fn=fn)


def require_workspace(db: str) -> None:
    """Commands that use a workspace refuse a path where there is none (a typo in --db would
    otherwise start an empty workspace); `glocal ingest` and `glocal demo` create them."""
    if not Path(db).exists():
        raise FileNotFoundError(f"{db}: no glocal workspace here; `glocal ingest` creates one (check --db or GLOCAL_DB)")


def parse_presets(items: list[str] | None) -> dict[str, str] | None:
    """['abs=abs-code', ...] -> {'abs': 'abs-code'}."""
    bad = [item for item in items or [] if "=" not in item]
    if bad:
        raise ValueError(f"--preset takes METHOD=PRESET (e.g. abs=abs-code; `glocal presets` lists them), not {bad[0]!r}")
    return dict(item.split("=", 1) for item in items) if items else None


def check_request(db: str, request, models: bool = True, dataset: bool = True) -> None:
    """What a flow would refuse, refused here, before Prefect's server starts (seconds) and once:
    the workspace, the run's plan (methods with their presets and overrides, crop kinds, text
    dataset, cluster options, scoring budget; ``glocal.run.plan``), the dataset (unless
    ``dataset`` is False: not ingested yet) and the models."""
    from glocal.backbones.identity import check_models
    from glocal.run.plan import plan_run
    from storage import Catalog

    require_workspace(db)
    plan_run(request)
    if dataset:
        Catalog(db).dataset(request.dataset)
    if models:
        check_models(request.model, request.attention_model)


def written(path: str | None) -> None:
    if path:
        print(f"wrote {path}", file=sys.stderr)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    from glocal.results.tables import FORMATS

    parser.add_argument("--format", choices=FORMATS, help="table (aligned, for people), csv or json; default: from --output's "
                                                          "extension, else table")
    parser.add_argument("--output", help="write to this file instead of the screen (.csv / .json pick the format)")


def split_values(text: str) -> list[str]:
    """'1,2,3' -> ['1', '2', '3']; commas inside [...] stay (list values such as step weights)."""
    import re

    return [v.strip() for v in re.split(r",(?![^\[]*\])", text) if v.strip()]


def layouts() -> dict:
    from glocal.data.datasets import LAYOUTS

    return LAYOUTS
