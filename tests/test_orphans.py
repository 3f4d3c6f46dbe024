"""A killed run leaves no process of ours behind: the temporary Prefect server dies with the
process that started it (flows.server), and Dask's workers with theirs, even when that process is
SIGKILLed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from processes import alive, still_alive, wait_for_marker

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")]

STARTS_A_SERVER = """
import sys, time
import flows  # what every glocal flow imports first
from prefect.server.api.server import SubprocessASGIServer  # what Prefect starts when no API URL is set

server = SubprocessASGIServer()
server.start(timeout=120)
open(sys.argv[1], "w").write(str(server.server_process.pid))
time.sleep(600)  # the test SIGKILLs us here: no atexit, no cleanup
"""


STARTS_A_COMMAND_SERVER = """
import sys, time
from flows.server import CommandServer  # what the glocal command line starts when no API URL is set

server = CommandServer()
server.start()
server.wait(120)
open(sys.argv[1], "w").write(str(server.process.pid))
time.sleep(600)  # the test SIGKILLs us here
"""


@pytest.mark.parametrize("script", [STARTS_A_SERVER, STARTS_A_COMMAND_SERVER], ids=["prefect's", "the command line's"])
def test_sigkilled_run_leaves_no_temporary_server(tmp_path, script):
    marker = tmp_path / "server.pid"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", script, str(marker)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = int(wait_for_marker(child, marker, 150, "temporary server start"))
    assert alive(server) and b"uvicorn" in Path(f"/proc/{server}/cmdline").read_bytes()  # the shim became the server
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert not still_alive([server], 30), f"temporary server {server} outlived its killed parent"


STARTS_A_CLUSTER = """
import os, sys, time
from distributed import LocalCluster  # what --cluster local starts (through prefect-dask)

if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    open(sys.argv[1], "w").write(" ".join(os.popen(f"pgrep -P {os.getpid()}").read().split()))
    time.sleep(600)  # the test SIGKILLs us here
"""


@pytest.mark.slow
def test_sigkilled_run_leaves_no_dask_workers(tmp_path):
    """Dask owns its worker processes: each exits when its parent's pipe closes (distributed's own
    guard), so a SIGKILLed `--cluster local` run leaves none behind."""
    marker, script = tmp_path / "children", tmp_path / "cluster.py"
    script.write_text(STARTS_A_CLUSTER)
    child = subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children = wait_for_marker(child, marker, 120, "LocalCluster start")
    workers = [int(p) for p in children.split() if alive(int(p))]  # not the pgrep's own shell, gone by now
    assert len(workers) >= 2
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert not still_alive(workers, 30), "Dask processes outlived their killed parent"


KILLED_EVALUATE = """
import sys, threading
import tasks.encode as encode_mod
from app.cli import main

real, seen = encode_mod.encode_images, []

def hang_on_second_shard(*args, **kw):
    seen.append(1)
    if len(seen) == 2:
        open(sys.argv[1], "w").write("in shard 2")
        threading.Event().wait(600)
    return real(*args, **kw)

encode_mod.encode_images = hang_on_second_shard
main(["evaluate", "shapes", "--model", sys.argv[3], "--methods", "clip,wca", "--n-crops", "2", "--db", sys.argv[2]])
"""


def test_a_killed_runs_flow_run_is_marked_crashed_next_time(tmp_path, tiny_clip_dir):
    """The killed process's flow run stays Running in Prefect until the next glocal flow marks it
    Crashed (its pid is gone); the next run itself completes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL

    from flows.crashed import mark_crashed_runs
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes")), shard_size=4)
    marker = tmp_path / "marker"
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", KILLED_EVALUATE, str(marker), db, str(tiny_clip_dir)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_marker(child, marker, 180, "evaluate reaching shard 2")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    with get_client(sync_client=True) as client:
        left = [r for r in client.read_flow_runs() if f"glocal-pid:{child.pid}" in r.tags]
        assert len(left) == 1 and left[0].state.type == StateType.RUNNING
        result = evaluate(dataset="shapes", db=db, model=str(tiny_clip_dir), methods=["clip", "wca"], n_crops=2)  # the next run
        assert client.read_flow_run(left[0].id).state.type == StateType.CRASHED and mark_crashed_runs() == []
        assert result["encoded_shards"] == 2  # and it resumed: shard 1 was kept
