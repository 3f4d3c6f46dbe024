"""What a glocal command costs besides its work, measured in one run (#27's suite time, and what
every user pays per command):

1. A flow command whose work is all stored (a rerun of `evaluate` on 6 generated images, tiny
   random CLIP): the installed `glocal evaluate` (its own temporary Prefect server started when
   the input is checked, so it starts while the command imports; the exit without the
   interpreter's teardown) against the same flow called from Python in a fresh interpreter
   (Prefect's own temporary server, started at the flow call; a normal exit), which is how the
   command ran before. Wall seconds, median of ``--repeats``.
2. The workspace bookkeeping a flow does: ``--operations`` catalog reads (each a short-lived
   DuckDB connection) outside and inside ``storage.held.holding_workspaces()``, ms per operation.

    python benchmarks/startup.py [--repeats 3] [--operations 300] [--record]

Prints each figure, the ratios, and the peak RSS of this process and of its largest child.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PYTHON_API = """
import sys
from flows.evaluate import evaluate
from glocal.run.request import RunRequest
evaluate(request=RunRequest.of(dataset="shapes", model=sys.argv[2], methods=["clip", "clip_e"]), db=sys.argv[1])
"""


def timed(command: list[str], env: dict, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]}... failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def commands(work: Path, repeats: int) -> dict[str, float]:
    from glocal.data.demo_data import generate_images
    from glocal.tiny import build_tiny_clip
    from tasks.ingest import ingest_folder

    db, model = str(work / "ws.duckdb"), str(build_tiny_clip(work / "tiny-clip"))
    ingest_folder(db, "shapes", str(generate_images(work / "shapes", per_class=2)), shard_size=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), HF_HUB_OFFLINE="1", GLOCAL_PRECISION="fp32", DO_NOT_TRACK="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING", PYTHONPATH=str(REPO))
    cli = [str(Path(sys.executable).parent / "glocal"), "evaluate", "shapes", "--model", model, "--methods", "clip,clip_e", "--db", db]
    api = [sys.executable, "-c", PYTHON_API, db, model]
    timed(cli, env, work)  # computes the run and migrates the Prefect database: not timed
    out = {"cli": [], "api": []}
    for _ in range(repeats):  # interleaved, so drift in the machine's load hits both alike
        out["cli"].append(timed(cli, env, work))
        out["api"].append(timed(api, env, work))
    return {name: statistics.median(times) for name, times in out.items()}


def bookkeeping(work: Path, operations: int) -> dict[str, float]:
    from storage import Catalog
    from storage.held import holding_workspaces

    catalog = Catalog(work / "book.duckdb")

    def burst() -> float:
        start = time.perf_counter()
        for shard in range(operations):
            catalog.registered_rows("encode", f"key{shard % 7}")
        return 1000 * (time.perf_counter() - start) / operations

    outside = burst()
    with holding_workspaces():
        inside = burst()
    return {"outside": outside, "inside": inside}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--operations", type=int, default=300)
    parser.add_argument("--record", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seconds = commands(work, args.repeats)
        ms = bookkeeping(work, args.operations)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    lines = [
        f"### startup.py, {datetime.date.today()} ({machine})",
        "",
        "| what | figure |",
        "|---|---|",
        f"| `glocal evaluate` rerun (all stored), installed command | {seconds['cli']:.2f} s |",
        f"| the same flow from Python in a fresh interpreter (Prefect's server at the flow call) | {seconds['api']:.2f} s |",
        f"| ratio | {seconds['api'] / seconds['cli']:.2f}x |",
        f"| catalog read, outside a flow's held workspace | {ms['outside']:.2f} ms |",
        f"| catalog read, inside `holding_workspaces()` | {ms['inside']:.2f} ms |",
        f"| ratio | {ms['outside'] / ms['inside']:.1f}x |",
        f"| peak RSS: this process / largest child | {own:.0f} / {child:.0f} MiB |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
