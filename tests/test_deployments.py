"""prefect.yaml's deployments as the README runs them: a real Prefect server on 127.0.0.1, a
process worker on the `glocal` pool, `prefect --no-prompt deploy --all` from the checkout, and
both deployments run to Completed on a tiny workspace; the nightly cron creates its runs."""

import datetime
import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import duckdb
import pytest

from servers import BIN, clean_env, free_port, group_alive, start, stop, wait_until_up

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def api_post(api: str, path: str, body: dict) -> list | dict:
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def flow_runs(api: str, deployment: str) -> list[dict]:
    deployments = api_post(api, "/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}})
    return api_post(api, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [d["id"] for d in deployments]}}})


def prefect(args: list[str], env: dict, seconds: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "prefect"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds)
    assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    return done


def wait_for_scheduled(api: str, deployment: str, seconds: float) -> list[dict]:
    import time

    deadline = time.time() + seconds
    while not (runs := [r for r in flow_runs(api, deployment) if r["state_type"] == "SCHEDULED"]):
        assert time.time() < deadline, f"the scheduler created no run of {deployment} within {seconds:g} s"
        time.sleep(1)
    return runs


def test_both_deployments_run_to_completed_on_a_real_server_and_process_worker(tmp_path, tiny_clip_dir, shell_prefect_home):
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "ws.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes", per_class=2)), shard_size=3)
    descriptions = tmp_path / "mine.json"
    classnames = json.loads(duckdb.connect(db, read_only=True).execute("SELECT classnames FROM datasets").fetchone()[0])
    descriptions.write_text(json.dumps({c: [f"a drawing of a {c}.", f"a {c} on a grey page."] for c in classnames}))

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # the session's shell PREFECT_HOME: its database is migrated once for all the shell tests (~6 s)
    env = clean_env(PREFECT_HOME=shell_prefect_home, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
                    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    server = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], tmp_path / "server.log", env)
    worker = None
    try:
        wait_until_up(f"{api}/health", server, tmp_path / "server.log", 120)
        env = {**env, "PREFECT_API_URL": api, "GLOCAL_HOME": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "1"}
        prefect(["work-pool", "create", "glocal", "--type", "process"], env)
        prefect(["--no-prompt", "deploy", "--all"], env)

        # the nightly cron: runs scheduled at 02:00 UTC
        scheduled = wait_for_scheduled(api, "nightly-imagenet", 60)
        starts = [datetime.datetime.fromisoformat(r["expected_start_time"]) for r in scheduled]
        assert all((t.astimezone(datetime.timezone.utc).hour, t.minute, t.second) == (2, 0, 0) for t in starts), starts
        assert len({t.date() for t in starts}) == len(starts)  # one a night

        worker = start([str(BIN / "prefect"), "worker", "start", "--pool", "glocal"], tmp_path / "worker.log", env, cwd=tmp_path)
        request = {"dataset": "shapes", "model": str(tiny_clip_dir), "methods": ["clip", "cupl"]}
        prefect(["deployment", "run", "evaluate/nightly-imagenet", "--params", json.dumps({"db": db, "request": request}),
                 "--watch", "--watch-interval", "1", "--watch-timeout", "300"], env, 330)
        prefect(["deployment", "run", "describe/regenerate-descriptions", "--params",
                 json.dumps({"db": db, "dataset": "shapes", "import_file": str(descriptions)}), "--watch", "--watch-interval", "1", "--watch-timeout", "300"], env, 330)
        for deployment in ("nightly-imagenet", "regenerate-descriptions"):
            states = [r["state_type"] for r in flow_runs(api, deployment) if r["state_type"] != "SCHEDULED"]
            assert states == ["COMPLETED"], (deployment, states, (tmp_path / "worker.log").read_text()[-3000:])
        with duckdb.connect(db, read_only=True) as con:
            runs = con.execute("SELECT run_id, description_set FROM runs WHERE status = 'done' ORDER BY created_at").fetchall()
            assert len(runs) == 2 and runs[1][1].startswith("shapes:file:mine#")  # the nightly run, then its re-score with the new set
            assert con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [runs[1][0]]).fetchone()[0] == 2 * len(classnames) * 2
    finally:
        if worker is not None:
            stop(worker, signal.SIGINT)  # the worker first, then the server (stack notes)
        stop(server, signal.SIGTERM)
    assert group_alive(server.pid) == [] and (worker is None or group_alive(worker.pid) == [])
