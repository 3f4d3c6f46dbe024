"""Helpers for the tests that drive child processes: wait until a child marks the point where it
is to be killed, and check that processes are gone."""

import time
from pathlib import Path


def wait_for_marker(child, marker: Path, seconds: float, what: str) -> str:
    """Wait until ``child`` writes ``marker`` (non-empty); fail with its stderr if it ends first."""
    deadline = time.time() + seconds
    while not marker.exists() or not marker.read_text():
        assert child.poll() is None, f"{what}: the child ended first: {child.stderr.read().decode()[-2000:] if child.stderr else ''}"
        assert time.time() < deadline, f"{what}: not reached within {seconds:g} s"
        time.sleep(0.1)
    return marker.read_text()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie waiting for its reaper has exited


def still_alive(pids: list[int], seconds: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out
