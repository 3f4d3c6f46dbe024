"""glocal: training-free zero-shot image classification with CLIP-family models (CLIP, CLIP-E,
CLIP-D, Waffle, CuPL, WCA, ABS, LGCA), as restartable dataset-wide runs in a DuckDB workspace.

Offline: `glocal models tiny --out models`, then
`glocal eval FOLDER --model models/tiny-clip --output results.json` (tiny random weights: chance
accuracy), or `glocal demo`. Real weights: --model openai/clip-vit-base-patch16 (a hub id or folder)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from app.commands.common import GlocalParser


def _offline_defaults() -> None:
    # Nothing phones home unless the user says otherwise.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a fresh PREFECT_HOME migrates its database on first start: Prefect's 20 s default is too short
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from glocal.progress import quiet_third_party_bars

    quiet_third_party_bars()


def build_parser() -> argparse.ArgumentParser:
    from glocal import __version__

    parser = GlocalParser(prog="glocal", description=__doc__,
                                     epilog="Exit codes: 0 done, 2 bad input, 3 descriptions incomplete, 4 workspace busy, "
                                            "5 files or models that cannot be read, 1 anything else, 130 interrupted, 143 terminated.")
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    parser.add_argument("--version", action="version", version=f"glocal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from app.commands import GROUPS

    for group in GROUPS:
        group.add(sub)
    for name in FLOW_COMMANDS:
        sub.choices[name].add_argument("-v", "--verbose", action="store_true",
                                       help="show Prefect's log lines (flow and task runs, each shard) on the console; "
                                            "the Prefect UI keeps them either way")
    return parser


# One error boundary: every failure is one line naming the problem, with an exit code per class.
EXIT_BAD_INPUT, EXIT_BUSY, EXIT_FILES, EXIT_UNEXPECTED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 4, 5, 1, 130, 143


def _by_sigterm(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt came from our SIGTERM handler through Prefect's (which
    raises its own TerminationSignal first, then re-sends the signal to the handler before it)."""
    while exc is not None:
        if isinstance(exc, Terminated) or type(exc).__name__ == "TerminationSignal":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def exit_code(exc: BaseException) -> int:
    from storage import WorkspaceBusy

    if isinstance(exc, WorkspaceBusy):
        return EXIT_BUSY
    if type(exc).__name__ == "IOException":  # DuckDB cannot read the workspace file (a folder, not a database, damaged)
        return EXIT_FILES
    if isinstance(exc, (ValueError, KeyError, FileNotFoundError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError):  # a model that cannot be loaded, permissions, a full disk
        return EXIT_FILES
    return EXIT_UNEXPECTED


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    if type(exc).__name__ == "IOException":
        return f"{text.removeprefix('IO Error: ')}: the workspace cannot be read; --db (or GLOCAL_DB) names its .duckdb file"
    return text if isinstance(exc, (ValueError, KeyError, OSError, RuntimeError)) else f"{type(exc).__name__}: {text}"


FLOW_COMMANDS = {"demo", "eval", "evaluate", "describe", "sweep", "reproduce"}  # the commands that start Prefect flows


@contextlib.contextmanager
def quiet_console(quiet: bool):
    """Without --verbose, Prefect's INFO lines stay off the console: its console handler is set
    to WARNING before Prefect is first imported (``common.flow_context`` filters the handlers of a
    Prefect already imported), and ``flows.tell`` writes glocal's own lines to stderr itself."""
    saved = {k: os.environ.get(k) for k in ("GLOCAL_QUIET", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")}
    os.environ["GLOCAL_QUIET"] = "1" if quiet else "0"
    if quiet and saved["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] is None:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def main(argv: list[str] | None = None) -> int:
    _offline_defaults()
    args = build_parser().parse_args(argv)
    previous = os.environ.get("GLOCAL_CLI")
    os.environ["GLOCAL_CLI"] = "1"  # flows leave result tables to the CLI, which prints them once (flows.log_table)
    try:
        return _run(args)
    finally:
        from app.commands.common import stop_prefect_server

        stop_prefect_server()
        if previous is None:
            os.environ.pop("GLOCAL_CLI", None)
        else:
            os.environ["GLOCAL_CLI"] = previous


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, Kubernetes or `timeout` stopping glocal), handled as Ctrl-C is."""


# the stop signals this command received: a signal's exception raised inside a library can reach
# the boundary re-wrapped (pydantic turns one raised mid-serialisation into its own error)
_SIGNALLED: list[int] = []


def _terminated(signum, frame):
    _SIGNALLED.append(signum)
    raise Terminated()


def _interrupted(signum, frame):
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt()


def _run(args) -> int:
    import signal

    start = time.time()
    _SIGNALLED.clear()
    previous = signal.signal(signal.SIGTERM, _terminated)
    previous_int = signal.signal(signal.SIGINT, _interrupted) if signal.getsignal(signal.SIGINT) is signal.default_int_handler else None
    try:
        return _run_command(args, start)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


def _stopped(terminated: bool) -> int:
    print(f"glocal: {'terminated (SIGTERM)' if terminated else 'interrupted'}; finished shards are kept, the same command resumes",
          file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _run_command(args, start: float) -> int:
    try:
        with quiet_console(args.command in FLOW_COMMANDS and not args.verbose):
            code = args.fn(args)  # flow commands check their input, then run their flow in common.flow_context
    except KeyboardInterrupt as exc:
        return _stopped(isinstance(exc, Terminated) or _by_sigterm(exc))
    except BrokenPipeError:
        # the reader went away (`glocal runs | head`): stop quietly, and point stdout at /dev/null
        # so the interpreter's final flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 -- the CLI's one boundary
        if _SIGNALLED:  # a stop signal's exception, re-wrapped on its way here
            import signal

            return _stopped(signal.SIGTERM in _SIGNALLED)
        if args.debug:
            raise
        code = exit_code(exc)
        hint = " (glocal --debug ... shows the traceback)" if code == EXIT_UNEXPECTED else ""
        print(f"glocal: error: {one_line(exc)}{hint}", file=sys.stderr)
        return code
    if args.command == "demo":
        print(f"done in {time.time() - start:.1f}s")
    return code


def console() -> None:
    """The installed ``glocal`` command: ``main``, then an exit that skips the interpreter's
    teardown. Freeing the ~4,500 modules torch, transformers and Prefect bring costs about 2 s
    at every exit, and nothing is left to write by then: the threads Python would join are joined,
    the exit handlers Python would run (Prefect's server stop, logging's flush) run, and the
    standard streams are flushed."""
    code = main()
    import atexit
    import threading

    threading._shutdown()  # what Python's own exit does first: join the non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`glocal runs | head`) has nothing to flush to
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
