"""Prefect flows that chain the stages."""

import os

from flows.server import tie_temporary_servers

# a run killed with SIGKILL (or by the OOM killer) must not leave its temporary server running
tie_temporary_servers()


def log_table(text: str) -> None:
    """A flow's result table into its log, unless the glocal CLI started the flow: the CLI prints
    the table itself, once, to stdout (where pipes and files want it)."""
    if os.environ.get("GLOCAL_CLI") != "1":
        print(text)
