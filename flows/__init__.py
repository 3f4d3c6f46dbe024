"""Prefect flows that chain the stages."""

import os
import sys

from flows.server import tie_temporary_servers

# a run killed with SIGKILL (or by the OOM killer) must not leave its temporary server running (applied
# when Prefect imports its server module, which a process with an API URL never does)
tie_temporary_servers()


def log_table(text: str) -> None:
    """A flow's result table into its log, unless the glocal CLI started the flow: the CLI prints
    the table itself, once, to stdout (where pipes and files want it)."""
    if os.environ.get("GLOCAL_CLI") != "1":
        print(text)


_TOLD: set[str] = set()


def tell(text: str) -> None:
    """A line meant for the user (a note, a summary): into the run's log, which the Prefect UI
    keeps; and where the console shows only warnings (the command line without --verbose), on
    stderr by itself, each line once per command (a sweep's points share their notes)."""
    import logging

    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        get_run_logger().info(text)
    except MissingContextError:  # outside a flow (the demo's steps before its flow)
        logging.getLogger("prefect.glocal").info(text)
    if os.environ.get("GLOCAL_QUIET") == "1" and text not in _TOLD:
        _TOLD.add(text)
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
