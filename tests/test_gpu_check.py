"""The prepared GPU check (benchmarks/gpu_check.py, #31) dry-runs on the CPU, so it cannot rot
before a device is lent: every part runs and the table has each part's figures."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_gpu_check_dry_runs_on_the_cpu(tmp_path):
    import os

    from prefect.settings import PREFECT_API_URL

    # the session's Prefect server: the dry run checks the script, not a temporary server's start
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", str(tmp_path / "out"), "--cpu"], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "out" / "gpu-check.md").read_text()
    assert table.startswith("# glocal GPU check (CPU dry run)") and table.strip() in done.stdout  # the file is what stdout showed
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert "| ok |" in rows["device"] and "GEMM" in rows["device"] and "torch" in rows["device"]
    assert "| skipped |" in rows["tests (cpu)"]
    assert "| ok |" in rows["encode.py eager"] and "1 tower rows" in rows["encode.py eager"]
    evaluate = rows["evaluate 12 images, 8 methods"]
    assert "| ok |" in evaluate and all(f"{stage} " in evaluate for stage in ("text", "attention", "encode", "score"))
    assert "\n| tiny | " in table  # encode.py's tower row, carried into the table
    for part in ("device", "encode-eager", "evaluate", "stage-times"):
        assert (tmp_path / "out" / f"{part}.log").exists(), part
