"""Real servers for the tests, started as a user starts them: each in its own session (so a
signal meant for pytest's process group does not reach it), on 127.0.0.1 and a free port, and
stopped with everything it started."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, child: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert child.poll() is None, f"{url}: the server exited: {log.read_text()[-3000:]}"
        assert time.time() < deadline, f"{url}: not up within {seconds:g} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


def start(command: list[str], log: Path, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    """``command`` in its own session, its stdout and stderr in ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


def stop(child: subprocess.Popen, first: int = signal.SIGINT, seconds: float = 30) -> None:
    """``first`` to the child's process group, then SIGKILL to what is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, first)
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=10)


def group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def clean_env(**more: str) -> dict:
    """The environment of a user's shell: no pytest import path, no test session's Prefect."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("PREFECT_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(more)
    return env
