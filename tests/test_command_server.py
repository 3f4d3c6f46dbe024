"""The command line's own temporary Prefect server (flows.server.CommandServer): none where
Prefect has an API URL, another port when its port is taken, stopped with the command."""

import socket
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tie (PR_SET_PDEATHSIG) is Linux's")


@pytest.mark.usefixtures("prefect_server")
def test_no_server_is_started_where_prefect_has_an_api_url():
    from app.commands import common

    try:
        assert common.start_prefect_server() is None
    finally:
        common.stop_prefect_server()


def test_a_taken_port_starts_the_server_on_another(monkeypatch, shell_prefect_home):
    import flows.server as server_module

    monkeypatch.setenv("PREFECT_HOME", shell_prefect_home)  # migrated once for the session
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = iter([port])
        real = server_module._free_port
        monkeypatch.setattr(server_module, "_free_port", lambda: next(ports, None) or real())
        server = server_module.CommandServer()
        server.start()
        try:
            url = server.wait(120)
            assert server.port != port and url == f"http://127.0.0.1:{server.port}/api"
            import urllib.request

            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                assert answer.status == 200
            process = server.process
        finally:
            server.stop()
    assert process.poll() is not None and server.process is None
