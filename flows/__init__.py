"""Prefect flows that chain the stages."""

from flows.server import tie_temporary_servers

# a run killed with SIGKILL (or by the OOM killer) must not leave its temporary server running
tie_temporary_servers()
