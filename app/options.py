"""The command line's side of typed requests: number parsers, and the run flags of ``glocal
evaluate``, ``eval`` and ``sweep`` generated from the run request's fields
(``glocal.run.request.RunRequest``), so a new option is added in one place, on the request."""

from __future__ import annotations

import argparse

from glocal.run.request import SCORE_MEMORY_HELP, RunRequest, flag_fields  # noqa: F401 (SCORE_MEMORY_HELP: for other commands' flags)


def _number(cast, valid, what: str):
    """An argparse type: ``cast`` of the text, refused with one line unless ``valid(value)``."""
    def parse(text: str):
        value = cast(text)
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return value
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "0 or more")


def at_least(minimum: int):
    """An argparse type: an integer of ``minimum`` or more."""
    return _number(int, lambda v: v >= minimum, f"{minimum} or more")
positive_float = _number(float, lambda v: v > 0, "a positive number")


def dataset_name(text: str) -> str:
    """An argparse type: a dataset name (``glocal.data.names``), refused at parse time when it could be a path."""
    from glocal.data.names import check_name

    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_run_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """One flag per flag field of the run request (``glocal.run.request.RunRequest``; only ``names``
    when given), named after it, with the field's default and help: a new run option is declared
    once, on the request."""
    for f in flag_fields():
        if names is not None and f.name not in names:
            continue
        meta, kwargs = f.metadata, {}
        if f.default is False:
            kwargs["action"] = "store_true"
        elif meta["minimum"] is not None:
            kwargs["type"] = positive_int if meta["minimum"] == 1 else at_least(meta["minimum"])
        if meta["bare"] is not None:
            kwargs.update(nargs="?", const=meta["bare"])
        if meta["required"]:
            kwargs["required"] = True
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=f.default, help=meta["help"], **kwargs)


def request_from_args(args: argparse.Namespace, **fields) -> RunRequest:
    """The run request of a command: its run flags, and ``fields`` (dataset, methods, presets...)."""
    return RunRequest.of(**{f.name: getattr(args, f.name) for f in flag_fields()}, **fields)
