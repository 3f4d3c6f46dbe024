"""storage.held: inside a flow the workspace file stays open through a burst of operations (one
DuckDB instance instead of one per operation), is let go when idle so other processes get it, and
is closed when the flow returns."""

import subprocess
import sys
import time

import duckdb
import pytest

from storage import Catalog, held


@pytest.fixture
def catalog(tmp_path):
    return Catalog(tmp_path / "ws.duckdb")


def count_opens(monkeypatch) -> list:
    opened = []
    real = duckdb.connect

    def connect(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("database"))
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    return opened


def test_a_burst_inside_a_scope_opens_the_file_once_and_leaves_it_free_after(catalog, monkeypatch):
    opened = count_opens(monkeypatch)
    with held.holding_workspaces():
        for shard in range(20):
            with catalog.connect() as con:
                con.execute("CREATE TABLE IF NOT EXISTS t (shard INT)")
                con.execute("INSERT INTO t VALUES (?)", [shard])
            with catalog.connect(read_only=True) as con:  # served by the writable instance
                assert con.execute("SELECT count(*) FROM t").fetchone()[0] == shard + 1
    assert len(opened) == 1
    # closed when the scope ends: this process may open the file in another mode at once
    with duckdb.connect(str(catalog.path), read_only=True) as con:
        assert con.execute("SELECT sum(shard) FROM t").fetchone()[0] == sum(range(20))
    before = len(opened)
    for _ in range(3):  # outside a scope: one instance per operation, as before
        with catalog.connect(read_only=True) as con:
            con.execute("SELECT 1")
    assert len(opened) == before + 3


def test_an_idle_file_is_let_go_so_another_process_gets_it_within_the_scope(catalog):
    with held.holding_workspaces():
        with catalog.connect() as con:
            con.execute("CREATE TABLE t AS SELECT 42 AS x")
        started = time.monotonic()
        other = subprocess.run([sys.executable, "-c", "import duckdb, sys, time\n"
                                "for _ in range(200):\n"
                                "    try:\n"
                                "        print(duckdb.connect(sys.argv[1]).execute('SELECT x FROM t').fetchone()[0]); break\n"
                                "    except duckdb.IOException: time.sleep(0.05)\n", str(catalog.path)],
                               capture_output=True, text=True, timeout=60)
        assert other.stdout.strip() == "42", other.stderr
        assert time.monotonic() - started < 10
        with catalog.connect(read_only=True) as con:  # and the scope opens it again when needed
            assert con.execute("SELECT x FROM t").fetchone() == (42,)


def test_sql_never_shares_a_flows_instance(catalog):
    """`glocal sql` locks its connection's settings; inside a scope with the file open for
    writing it still gets a private read-only connection, and the scope's writes go on after."""
    with held.holding_workspaces():
        with catalog.connect() as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
        columns, rows, _ = catalog.query("SELECT x FROM t")
        assert (columns, rows) == (["x"], [(1,)])
        with catalog.connect() as con:  # the scope's instance again, writable
            con.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(ValueError, match="read-only"):
            catalog.query("INSERT INTO t VALUES (3)")
        assert catalog.query("SELECT sum(x) FROM t")[1] == [(3,)]
        with catalog.connect() as con:
            assert con.execute("SELECT current_setting('lock_configuration')").fetchone() == (False,)  # the sql's settings stayed with it


def test_an_instance_in_use_when_the_scope_ends_is_closed_when_given_back(catalog):
    """Another thread still inside an operation when the flow's scope ends: its instance is
    closed when that operation ends, not kept open for good."""
    import threading

    inside, release = threading.Event(), threading.Event()

    def slow_operation():
        with catalog.connect() as con:
            con.execute("CREATE TABLE t AS SELECT 7 AS x")
            inside.set()
            release.wait(10)

    with held.holding_workspaces():
        worker = threading.Thread(target=slow_operation)
        worker.start()
        assert inside.wait(10)
    release.set()
    worker.join(10)
    with duckdb.connect(str(catalog.path), read_only=True) as con:  # another mode: only possible once it is closed
        assert con.execute("SELECT x FROM t").fetchone() == (7,)
