"""Flow runs left "Running" by a glocal process that died (SIGKILL, the OOM killer) are marked
Crashed the next time a glocal flow starts. Each flow run the CLI starts carries its host and pid
as tags; a Running run of this host whose process is gone cannot finish, so its state says so.
A pid reused by an unrelated process keeps the run as it is (the safe side)."""

from __future__ import annotations

import os
import socket

TAG = "glocal"


def run_tags() -> list[str]:
    return [TAG, f"glocal-host:{socket.gethostname()}", f"glocal-pid:{os.getpid()}"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def mark_crashed_runs() -> list[str]:
    """Mark Crashed every Running glocal flow run of this host whose process is gone. -> their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    marked = []
    with get_client(sync_client=True) as client:
        running = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            tags=FlowRunFilterTags(all_=[TAG, f"glocal-host:{socket.gethostname()}"])))
        for run in running:
            pid = next((int(t.split(":", 1)[1]) for t in run.tags if t.startswith("glocal-pid:")), None)
            if pid is None or pid == os.getpid() or _alive(pid):
                continue
            client.set_flow_run_state(run.id, Crashed(message=f"the glocal process running it (pid {pid}) is gone; finished shards "
                                                              "are kept, the same command resumes"), force=True)
            marked.append(str(run.id))
    return marked
