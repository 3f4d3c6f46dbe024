"""The evaluate flow on a Dask cluster (prefect-dask's DaskTaskRunner over a LocalCluster of
worker processes): identical predictions to the single-process run, models loaded once per
worker, the flow process the only database writer, and a worker killed mid-shard costs only that
shard, redone elsewhere."""

import json
import os
import signal
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

METHODS = ["clip", "wca", "abs"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_clip_dir, tiny_dino_dir):
    """The dataset (12 images in 6 shards) and its single-process run."""
    from runs import evaluate

    root = tmp_path_factory.mktemp("cluster")
    db = str(root / "ref.duckdb")
    ingest(db, root)
    kwargs = dict(dataset="shapes", model=str(tiny_clip_dir), methods=METHODS, attention_model=str(tiny_dino_dir), n_crops=3)
    result = evaluate(db=db, **kwargs)
    return dict(root=root, db=db, kwargs=kwargs, result=result)


def ingest(db, root):
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    images = root / "shapes"
    if not images.exists():
        generate_images(images)
    return ingest_folder(db, "shapes", str(images), shard_size=2)


def predictions(db):
    with duckdb.connect(db, read_only=True) as con:
        return con.execute("SELECT method, image_id, prediction, top5, top5_scores FROM predictions ORDER BY method, image_id").fetchall()


def workers(db, stage):
    """{shard: (pid, loads)} from the 'worker' tag each shard's artifact records."""
    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT shard, meta FROM artifacts WHERE stage = ?", [stage]).fetchall()
    out = {}
    for shard, meta in rows:
        _, pid, loads = json.loads(meta)["worker"].split(":")
        out[shard] = (int(pid), loads)
    return out


def test_two_local_workers_give_identical_predictions(reference, tmp_path):
    from runs import evaluate

    db = str(tmp_path / "w.duckdb")
    ingest(db, reference["root"])
    result = evaluate(db=db, cluster="local", workers=2, **reference["kwargs"])
    assert result["run_id"] == reference["result"]["run_id"] and result["encoded_shards"] == 6
    assert predictions(db) == predictions(reference["db"])
    encode = workers(db, "encode")
    assert len(encode) == 6 and os.getpid() not in {pid for pid, _ in encode.values()}
    assert len({pid for pid, _ in encode.values()}) == 2  # both workers took shards
    score = workers(db, "score")
    assert len(score) == 6 and os.getpid() not in {pid for pid, _ in score.values()}  # scored on the workers too
    for stage in ("attention", "encode"):
        by_worker = {}
        for pid, loads in workers(db, stage).values():
            by_worker.setdefault(pid, set()).add(loads)
        # a worker's model-load count never grows after its first shard: loaded once, reused
        assert all(len(counts) == 1 for counts in by_worker.values()), by_worker
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT (stage, key, shard)) FROM artifacts WHERE stage != 'text'").fetchone() == (18, 18)


def test_cluster_arguments_are_checked_before_any_work(tmp_path, tiny_clip_dir):
    from flows.cluster import task_runner
    from runs import evaluate

    with pytest.raises(ValueError, match="scheduler address"):
        task_runner("10.0.0.5:8786")
    with pytest.raises(ValueError, match="--workers applies to --cluster local"):
        task_runner("tcp://10.0.0.5:8786", workers=2)
    with pytest.raises(ValueError, match="unknown method"):
        evaluate(dataset="shapes", db=str(tmp_path / "w.duckdb"), model=str(tiny_clip_dir), methods=["nope"], cluster="local")


def kill_self_on_shard(marker: str, first_id: str) -> None:
    """Run on every worker: the first worker to encode the shard that starts with ``first_id``
    records its pid and SIGKILLs itself mid-shard (after the images were read)."""
    import tasks.encode as encode_mod

    real = encode_mod.encode_images

    def encode(backbone, images, ids, *args, **kw):
        if ids[0] == first_id:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return real(backbone, images, ids, *args, **kw)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(backbone, images, ids, *args, **kw)

    encode_mod.encode_images = encode


def test_worker_killed_mid_shard_still_completes_identically(reference, tmp_path):
    import cloudpickle
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    from runs import evaluate

    db = str(tmp_path / "w.duckdb")
    ingest(db, reference["root"])
    with duckdb.connect(db, read_only=True) as con:
        victim = con.execute("SELECT image_id FROM images WHERE shard = 3 ORDER BY image_id LIMIT 1").fetchone()[0]
    marker = str(tmp_path / "killed")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"PREFECT_API_URL": PREFECT_API_URL.value(), "OMP_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        client.run(kill_self_on_shard, marker, victim)
        result = evaluate(db=db, cluster=cluster.scheduler_address, **reference["kwargs"])
    killed_pid = int(Path(marker).read_text())
    assert result["encoded_shards"] == 6
    assert predictions(db) == predictions(reference["db"])
    encode = workers(db, "encode")
    assert encode[3][0] != killed_pid  # shard 3 was redone by another worker process
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT shard) FROM artifacts WHERE stage = 'encode'").fetchone() == (6, 6)
        assert con.execute("SELECT count(*) - count(DISTINCT (run_id, method, image_id)) FROM predictions").fetchone()[0] == 0
    leftovers = [p for p in (Path(db).parent / "artifacts").rglob(".tmp-*")]
    assert len(leftovers) <= 1  # at most the killed writer's temporary file, never registered


def test_a_plugin_named_by_the_environment_runs_in_the_workers(tmp_path, tiny_clip_dir, monkeypatch):
    """GLOCAL_PLUGINS=grid_kind (tests/grid_kind.py on PYTHONPATH): the command line finds its
    method, and the Dask workers, which plan and encode its crops, load it too."""
    import pyarrow.parquet as pq
    from plugins import plugin

    from app.cli import main

    tests_dir = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("GLOCAL_PLUGINS", "grid_kind")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p))
    db = str(tmp_path / "w.duckdb")
    ingest(db, tmp_path)
    with plugin("grid_kind"):  # registered here as the lookups would, and taken back after the test
        assert main(["evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip,grid_mean", "--cluster", "--workers", "1",
                     "--db", db]) == 0
    encode_workers = {pid for pid, _ in workers(db, "encode").values()}
    assert encode_workers and os.getpid() not in encode_workers  # the grid crops were encoded in a worker process
    with duckdb.connect(db, read_only=True) as con:
        paths = [r[0] for r in con.execute("SELECT path FROM artifacts WHERE stage = 'encode'").fetchall()]
        assert con.execute("SELECT count(*) FROM predictions WHERE method = 'grid_mean'").fetchone()[0] == 12
    assert all({"grid", "grid_boxes"} <= set(pq.ParquetFile(Path(db).parent / p).schema_arrow.names) for p in paths)


def _installed_cli_env() -> dict:
    """The environment a user's shell gives the installed `glocal`: no pytest import path, no
    Prefect API of the test session (glocal starts its own temporary server)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREFECT_API_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_installed_cli_runs_a_cluster_from_outside_the_checkout_and_sigterm_ends_it_like_ctrl_c(reference, tmp_path, tiny_clip_dir):
    """`glocal evaluate --cluster --workers 2` as a user runs it: the installed script, from a
    folder that is not the checkout (Dask's scratch folder, first on the workers' sys.path, holds
    a `storage/` spill folder that shadowed glocal's package under an editable install). SIGTERM
    (a scheduler's, Kubernetes' or `timeout`'s way to stop a job) mid-encode: exit 143 within
    seconds with the resume message, and no process of the run left behind; the same command then
    finishes with the single-process run's predictions."""
    import subprocess
    import time

    from processes import descendants, still_alive

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = str(elsewhere / "ws.duckdb")
    glocal = str(Path(sys.executable).parent / "glocal")
    common = {"cwd": elsewhere, "env": _installed_cli_env()}
    done = subprocess.run([glocal, "ingest", "shapes", str(reference["root"] / "shapes"), "--shard-size", "2", "--db", db],
                          capture_output=True, text=True, timeout=120, **common)
    assert done.returncode == 0, done.stderr[-2000:]
    command = [glocal, "evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip,wca", "--n-crops", "3",
               "--cluster", "--workers", "2", "--verbose", "--db", db]
    slow = [c if c != "3" else "2000" for c in command]  # 2000 crops an image: minutes of work, stopped within seconds
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        child = subprocess.Popen(slow, stderr=err, stdout=subprocess.DEVNULL, **common)
        deadline = time.time() + 240
        while "Beginning subflow run" not in log.read_text() or not descendants(child.pid):
            assert child.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(4)  # the workers are encoding
        assert child.poll() is None, log.read_text()[-3000:]
        family = descendants(child.pid)
        stopped = time.time()
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=90)
    assert code == 143 and time.time() - stopped < 60, log.read_text()[-3000:]
    assert "the same command resumes" in log.read_text()
    assert still_alive(family, 30) == []

    done = subprocess.run(command, capture_output=True, text=True, timeout=420, **common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert predictions(db) == [row for row in predictions(reference["db"]) if row[0] in ("clip", "wca")]
    assert len({pid for pid, _ in workers(db, "encode").values()}) >= 1 and os.getpid() not in {p for p, _ in workers(db, "encode").values()}


def break_stage_import() -> None:
    """Run on every worker: importing the score stage fails there, as it does in an environment
    without glocal."""
    sys.modules["tasks.score"] = None


def test_a_worker_that_cannot_import_the_stages_stops_the_run_at_once(reference, tmp_path):
    import time

    import cloudpickle
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    from runs import evaluate

    db = str(tmp_path / "w.duckdb")
    ingest(db, reference["root"])
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"PREFECT_API_URL": PREFECT_API_URL.value(), "OMP_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        client.run(break_stage_import)
        started = time.time()
        with pytest.raises(Exception, match="1 Dask worker\\(s\\) cannot import glocal's stages.*tasks.score"):
            evaluate(db=db, cluster=cluster.scheduler_address, **reference["kwargs"])
    assert time.time() - started < 60
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts WHERE stage IN ('attention', 'encode', 'score')").fetchone()[0] == 0
