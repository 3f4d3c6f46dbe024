"""A killed run leaves no process of ours behind: the temporary Prefect server dies with the
process that started it (flows.server), and Dask's workers with theirs, even when that process is
SIGKILLed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie waiting for its reaper has exited


def test_sigkilled_run_leaves_no_temporary_server(tmp_path):
    marker = tmp_path / "server.pid"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", STARTS_A_SERVER, str(marker)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 150
    while not marker.exists() or not marker.read_text():
        assert child.poll() is None, f"the server never started: {child.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "the server never started"
        time.sleep(0.2)
    server = int(marker.read_text())
    assert alive(server) and b"uvicorn" in Path(f"/proc/{server}/cmdline").read_bytes()  # the shim became the server
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    deadline = time.time() + 30
    while alive(server) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(server), f"temporary server {server} outlived its killed parent"


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
    deadline = time.time() + 120
    while not marker.exists() or not marker.read_text():
        assert child.poll() is None, f"the cluster never started: {child.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "the cluster never started"
        time.sleep(0.2)
    workers = [int(p) for p in marker.read_text().split() if alive(int(p))]  # not the pgrep's own shell, gone by now
    assert len(workers) >= 2
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    deadline = time.time() + 30
    while any(alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if alive(p)], "Dask processes outlived their killed parent"
