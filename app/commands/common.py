"""What every command shares: the parser class (defaults in the help), the workspace flag, the
output options, the value parsers, and the checks a run request passes before Prefect starts."""

from __future__ import annotations

import argparse
import contextlib
import logging
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

    def error(self, message: str):
        """Bad input is one line naming the problem (the usage is one --help away), exit 2."""
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help shows the usage)\n")


def uses_workspace(parser: argparse.ArgumentParser, fn) -> None:
    """A command that reads or writes a workspace: its --db flag, and the function it runs."""
    parser.add_argument("--db", default=os.environ.get("GLOCAL_DB", "glocal.duckdb"), type=workspace_file,
                        help="workspace DuckDB file (default: $GLOCAL_DB or ./glocal.duckdb)")
    parser.set_defaults(fn=fn)


def workspace_file(text: str) -> str:
    """An argparse type: the workspace's .duckdb file; a folder is refused with the file to name."""
    if Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: name the workspace's .duckdb file, e.g. {Path(text) / 'glocal.duckdb'}")
    return text


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


def rounded(value: float | None, digits: int) -> float | None:
    """``value`` rounded; None (a metric a run does not have) kept."""
    return None if value is None else round(value, digits)


def written(path: str | None) -> None:
    if path:
        print(f"wrote {path}", file=sys.stderr)


CLIP_BENCHMARK_HELP = ("clip_benchmark: one JSON per (dataset, model, method) in CLIP_benchmark's result schema, in the folder --output "
                       "names (read by `clip_benchmark build`; the method is in the model field)")


def add_output_options(parser: argparse.ArgumentParser, clip_benchmark: bool = False) -> None:
    from glocal.results.tables import FORMATS

    parser.add_argument("--format", choices=FORMATS + (("clip_benchmark",) if clip_benchmark else ()),
                        help="table (aligned, for people), csv or json; default: from --output's extension, else table"
                             + ("; " + CLIP_BENCHMARK_HELP if clip_benchmark else ""))
    parser.add_argument("--output", help="write to this file instead of the screen (.csv / .json pick the format)"
                                         + ("; a folder for --format clip_benchmark" if clip_benchmark else ""))


def clip_benchmark_folder(args) -> None:
    """--format clip_benchmark needs --output naming a folder (checked before any work)."""
    if not args.output:
        raise ValueError("--format clip_benchmark writes one file per result: give --output FOLDER")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise ValueError(f"--output {args.output}: a file; --format clip_benchmark writes into a folder")


def write_clip_benchmark(rows: list[dict], folder: str) -> None:
    from glocal.results.clip_benchmark import records_from_rows, write_results

    for path in write_results(records_from_rows(rows), folder):
        written(path)


def split_values(text: str) -> list[str]:
    """'1,2,3' -> ['1', '2', '3']; commas inside [...] stay (list values such as step weights)."""
    import re

    return [v.strip() for v in re.split(r",(?![^\[]*\])", text) if v.strip()]


def layouts() -> dict:
    from glocal.data.datasets import LAYOUTS

    return LAYOUTS


class OneErrorLine(logging.Filter):
    """Under the CLI (without --debug), a failing flow's traceback and "Finished in state Failed"
    stay off the console, which gets the CLI's one ``glocal: error:`` line instead; the Prefect
    API (its UI) still records them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Finished in state Failed" in message or "Finished in state Crashed" in message:
            return False
        return not (record.levelno >= logging.ERROR and record.exc_info)


class WarningsOnly(logging.Filter):
    """Without --verbose, Prefect's INFO lines (runs created, each shard done, "Finished in state
    Completed") stay off the console: it gets glocal's own lines (``flows.tell``), warnings and
    the results. The Prefect API (its UI) still records every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("prefect")


_SERVER: list = []  # [this command's flows.server.CommandServer, or None where Prefect has an API URL], once decided


def start_prefect_server():
    """Start the command's temporary Prefect server in the background, unless Prefect has an API
    URL (a server of the user's); once per command. Flow commands call this as soon as their input
    is checked, so the server's start (seconds) overlaps the command's reading and imports; a bad
    request never starts one."""
    if not _SERVER:
        from prefect.settings import PREFECT_API_URL

        from flows.server import CommandServer

        server = None if PREFECT_API_URL.value() else CommandServer()
        if server is not None:
            server.start()
        _SERVER.append(server)
    return _SERVER[0]


def stop_prefect_server() -> None:
    """At the end of a command (``app.cli.main``): its temporary server, if it started one."""
    if _SERVER:
        server = _SERVER.pop()
        if server is not None:
            # Prefect sends its log lines and events in batches from worker threads, drained at
            # exit; drained here first, while the server can still take them
            for module, worker in (("prefect.logging.handlers", "APILogWorker"), ("prefect.events.worker", "EventsWorker")):
                if module in sys.modules:
                    getattr(sys.modules[module], worker).drain_all(timeout=10, at_exit=False)
            server.stop()


@contextlib.contextmanager
def server_context(loads_models: bool):
    """Prefect pointed at the command's temporary server, once it answers."""
    server = start_prefect_server()
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, PREFECT_UI_URL, temporary_settings

    if loads_models and not server.ready:
        import transformers.modeling_utils  # noqa: F401 -- the flow loads a model first: its imports use the seconds the server needs
    url = server.wait(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_UI_URL: ""}):  # no UI: no "View at" links to it
        yield


@contextlib.contextmanager
def flow_context(args, loads_models: bool = True):
    """Around a command's flow call, entered after its input is checked (a bad request fails in a
    second, before Prefect is imported): Prefect's API is the user's server or the command's
    temporary one (``start_prefect_server``); its flow runs carry this process's host and pid
    (``flows.crashed``: a run whose process was killed is marked Crashed the next time), and the
    console gets one error line (without --debug) and no Prefect INFO lines (without --verbose)."""
    from prefect import tags

    from flows.crashed import run_tags

    filters = ([] if getattr(args, "debug", False) else [OneErrorLine()]) + ([] if getattr(args, "verbose", True) else [WarningsOnly()])
    handlers = list(logging.root.handlers)  # Prefect's console handler, now that Prefect is imported
    for handler in handlers:
        for f in filters:
            handler.addFilter(f)
    try:
        with server_context(loads_models), tags(*run_tags()):
            yield
    finally:
        for handler in handlers:
            for f in filters:
                handler.removeFilter(f)
