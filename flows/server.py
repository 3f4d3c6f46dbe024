"""The temporary Prefect API server, tied to the life of the process that started it.

With no ``PREFECT_API_URL``, Prefect starts a temporary server (a uvicorn subprocess) for the
flow and stops it at exit. A run killed by SIGKILL or the kernel's OOM killer never reaches
exit, and the server would be left running. On Linux every temporary server this process starts
is launched through a two-line shim that asks the kernel to send it SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``, kept across ``exec``), then becomes uvicorn: a killed run leaves no
server behind. The server also runs in a session of its own, so Ctrl-C in a terminal (SIGINT to
the whole foreground process group) reaches glocal, which stops cleanly and exits 130, and not the
server it still needs to record that stop. Elsewhere servers start as Prefect starts them.
"""

from __future__ import annotations

import os
import subprocess
import sys

# argv: parent pid, then the server's own command. PR_SET_PDEATHSIG = 1; the parent check closes
# the window in which the parent died before the request was made.
LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class _TiedSubprocess:
    """``subprocess`` as Prefect's server module sees it, with ``Popen`` going through the shim."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, **kwargs):  # noqa: N802 -- stands in for subprocess.Popen
        kwargs["start_new_session"] = True  # out of the terminal's process group: Ctrl-C is glocal's to handle
        return subprocess.Popen([sys.executable, "-c", LAUNCHER, str(os.getpid()), *args], **kwargs)


def tie_temporary_servers() -> bool:
    """Make every temporary Prefect server this process starts die with it (Linux). Idempotent;
    returns whether servers are tied."""
    if not sys.platform.startswith("linux"):
        return False
    import prefect.server.api.server as server_module

    if not isinstance(server_module.subprocess, _TiedSubprocess):
        server_module.subprocess = _TiedSubprocess()
    return True
