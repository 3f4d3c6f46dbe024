"""Ctrl-C in a terminal: the kernel sends SIGINT to the whole foreground process group, glocal and
every child it did not move out of that group. The installed `glocal evaluate` (with its own
temporary Prefect server) must stop within seconds, exit 130 with the resume message, and leave no
process behind."""

import os
import signal
import subprocess
import time

import pytest

from processes import descendants, still_alive
from servers import BIN, clean_env, group_alive

pytestmark = pytest.mark.slow


def test_ctrl_c_to_the_process_group_stops_evaluate_with_130_and_leaves_nothing(tmp_path, tiny_clip_dir, shell_prefect_home):
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "ws.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes", per_class=4)), shard_size=3)  # 4 shards of ~1.5 s each
    log = tmp_path / "stderr.txt"
    env = clean_env(PREFECT_HOME=shell_prefect_home)
    with open(log, "w") as err:
        # a terminal's foreground job: a process group of its own, which Ctrl-C signals whole
        child = subprocess.Popen([str(BIN / "glocal"), "evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip,wca",
                                  "--n-crops", "2000", "--verbose", "--db", db],
                                 cwd=tmp_path, env=env, stderr=err, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 180
        while "encode: shard 1/4 done" not in log.read_text():
            assert child.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(0.5)  # encoding the second shard
        family = descendants(child.pid)
        assert child.poll() is None and family, log.read_text()[-3000:]  # the temporary server runs
        pressed = time.time()
        os.killpg(child.pid, signal.SIGINT)
        code = child.wait(timeout=120)
    took = time.time() - pressed
    assert code == 130 and took < 30, (code, took, log.read_text()[-3000:])
    assert "interrupted; finished shards are kept, the same command resumes" in log.read_text()
    assert still_alive(family, 20) == [] and group_alive(child.pid) == []
