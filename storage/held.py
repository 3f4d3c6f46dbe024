"""Workspace files kept open through a burst of short connections.

Every storage operation opens a short-lived connection so that other processes (a `glocal sql`
in another terminal, the next command) get the file between operations. Opening a DuckDB file
starts a database instance, ~15 ms even for an empty one; a connection to an instance already
open in this process costs ~0.5 ms. A flow's bookkeeping is bursts of such operations (each shard
is looked up, checked, registered, and its predictions stored: ~40 connections for a small
evaluate, thousands for ImageNet), so inside ``holding_workspaces()`` (each flow's body) the
instance stays open between operations: each operation gets its own cursor on it, and an instance
unused for ``IDLE_S`` is closed, so the file is free while the flow computes. Leaving the outermost
scope closes them all: after a flow returns, the file is as free as before.

Inside a scope, a read-only request served while the file is open for writing gets a cursor of
the writable instance (DuckDB opens a file in one mode per process); the read-only SQL of `glocal
sql` never shares one (``Workspace.query`` asks for a private connection).
"""

from __future__ import annotations

import contextlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

IDLE_S = 0.25  # an instance unused this long is closed: other processes wait at most about this much longer

_lock = threading.Lock()
_depth = 0  # active scopes in this process
_open: dict[str, _Held] = {}  # database path -> its open instance
_stop = threading.Event()


@dataclass
class _Held:
    connection: object  # duckdb.DuckDBPyConnection: the instance's first connection, kept open
    read_only: bool
    users: int = 0
    last_used: float = 0.0


def holding() -> bool:
    return _depth > 0


@contextmanager
def holding_workspaces():
    """Within: the workspace files this process opens stay open between operations (see the
    module's docstring). Re-entrant; thread-safe."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _stop.clear()
            threading.Thread(target=_close_idle, name="glocal-idle-workspaces", daemon=True).start()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _stop.set()
                for path in [p for p, held in _open.items() if held.users == 0]:
                    _open.pop(path).connection.close()


def _close_idle() -> None:
    while not _stop.wait(IDLE_S / 2):
        with _lock:
            now = time.monotonic()
            for path in [p for p, held in _open.items() if held.users == 0 and now - held.last_used > IDLE_S]:
                _open.pop(path).connection.close()


def take(path: str, read_only: bool):
    """A cursor on ``path``'s open instance when one can serve ``read_only`` (a writable one serves
    both), else None; an idle read-only instance is closed when a writer asks."""
    with _lock:
        held = _open.get(path)
        if held is not None and held.read_only and not read_only and held.users == 0:
            _open.pop(path).connection.close()
            held = None
        if held is None or (held.read_only and not read_only):
            return None
        held.users += 1
        return held.connection.cursor()


def adopt(path: str, connection, read_only: bool):
    """Keep a newly opened instance open (unless one already is); returns a cursor on it, or
    None when the instance is not kept (the caller uses the connection itself)."""
    with _lock:
        if path in _open or not _depth:
            return None
        _open[path] = _Held(connection, read_only, users=1)
        return connection.cursor()


def give_back(path: str) -> None:
    with _lock:
        held = _open.get(path)
        if held is not None:
            held.users -= 1
            held.last_used = time.monotonic()
            if held.users == 0 and not _depth:  # in use (another thread) when the last scope ended: closed now
                _open.pop(path).connection.close()


def close_idle(path: str) -> None:
    """Before a private connection to ``path``: its idle open instance closed (a private
    connection in another mode could not open beside it)."""
    with _lock:
        held = _open.get(path)
        if held is not None and held.users == 0:
            with contextlib.suppress(Exception):  # an instance DuckDB invalidated closes with an error
                _open.pop(path).connection.close()
