"""Temporary Prefect API servers, tied to the life of the process that started them.

With no ``PREFECT_API_URL``, Prefect starts a temporary server (a uvicorn subprocess) for the
flow and stops it at exit. A run killed by SIGKILL or the kernel's OOM killer never reaches
exit, and the server would be left running. On Linux every temporary server this process starts
is launched through a two-line shim that asks the kernel to send it SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``, kept across ``exec``), then becomes uvicorn: a killed run leaves no
server behind. The server also runs in a session of its own, so Ctrl-C in a terminal (SIGINT to
the whole foreground process group) reaches glocal, which stops cleanly and exits 130, and not the
server it still needs to record that stop. Elsewhere servers start as Prefect starts them.

The glocal command line starts its server itself (``CommandServer``), as soon as a command's
input is checked, so the server's start (seconds) overlaps the command's own imports and reading;
Prefect then sees an API URL and starts none. Flows called from Python get Prefect's own
temporary server, tied as above. Nothing here imports Prefect's server module (seconds): the tie
is applied when Prefect imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

# argv: parent pid, then the server's own command. PR_SET_PDEATHSIG = 1; the parent check closes
# the window in which the parent died before the request was made.
LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
PREFECT_SERVER_MODULE = "prefect.server.api.server"


class _TiedSubprocess:
    """``subprocess`` as Prefect's server module sees it, with ``Popen`` going through the shim."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, **kwargs):  # noqa: N802 -- stands in for subprocess.Popen
        kwargs["start_new_session"] = True  # out of the terminal's process group: Ctrl-C is glocal's to handle
        if not sys.platform.startswith("linux"):
            return subprocess.Popen(args, **kwargs)
        return subprocess.Popen([sys.executable, "-c", LAUNCHER, str(os.getpid()), *args], **kwargs)


def _tie(module) -> None:
    if not isinstance(module.subprocess, _TiedSubprocess):
        module.subprocess = _TiedSubprocess()


class _TieOnImport(importlib.abc.MetaPathFinder):
    """Ties Prefect's server module the moment it is imported (an import costs ~2 s, which a
    process with an API URL never needs to pay)."""

    def find_spec(self, name, path, target=None):
        if name != PREFECT_SERVER_MODULE:
            return None
        sys.meta_path.remove(self)  # once is enough, and lets the search below find the real module
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module, load=load):
                load(module)
                _tie(module)

            spec.loader.exec_module = exec_module
        return spec


def tie_temporary_servers() -> bool:
    """Make every temporary Prefect server this process starts die with it (Linux). Idempotent;
    returns whether servers are tied."""
    if not sys.platform.startswith("linux"):
        return False
    module = sys.modules.get(PREFECT_SERVER_MODULE)
    if module is not None:
        _tie(module)
    elif not any(isinstance(finder, _TieOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TieOnImport())
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UVICORN_STARTUP_FAILURE = 3  # the port was taken between our check and uvicorn's bind: another port


class CommandServer:
    """The temporary Prefect API server of one glocal command, started in the background when
    the command's input is checked: ``start``, then ``wait`` right before the first flow call,
    ``stop`` at the end (and at exit). It is started as Prefect starts its own (uvicorn on
    127.0.0.1 serving ``create_app`` without the UI, in ephemeral mode, with this process's
    Prefect settings) and tied as above."""

    def __init__(self):
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.ready = False
        import atexit

        atexit.register(self.stop)  # a command that never reaches its own stop (an error on the way) still stops it

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        import prefect
        from prefect.settings import get_current_settings

        self.port = _free_port()
        settings = get_current_settings().to_environment_variables(exclude_unset=True)
        settings.pop("PREFECT_API_URL", None)
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1", **settings}
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                   f"{PREFECT_SERVER_MODULE}:create_app", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
                   "--lifespan", "on"]
        self.process = _TiedSubprocess.Popen(command, env=env)

    def wait(self, timeout_s: float) -> str:
        """Block until the server answers (restarting it on another port if its port was taken);
        returns its API URL."""
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            code = self.process.poll()
            if code == UVICORN_STARTUP_FAILURE:
                self.start()
                continue
            if code is not None:
                raise RuntimeError(f"the temporary Prefect server exited with code {code} while starting (its messages are above); "
                                   "set PREFECT_API_URL to use a running server")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    self.ready = answer.status == 200
            except OSError:
                pass
            if not self.ready:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the temporary Prefect server did not start within {timeout_s:g} s "
                                       "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL)")
                time.sleep(0.1)
        return self.api_url

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process, self.ready = self.process, None, False
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
