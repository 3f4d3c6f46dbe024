"""Before/after check for refactors: every method's stored predictions on the sample photos.

    python benchmarks/same_predictions.py snapshot --out before.csv   # on the old commit
    python benchmarks/same_predictions.py snapshot --out after.csv    # on the new one
    python benchmarks/same_predictions.py compare before.csv after.csv

`snapshot` runs the command line as a user would, in a fresh temporary workspace: tiny random CLIP
(seeded, so the same weights on every commit), the real DINOv2 from ../shared/data for attention,
the first 40 sample photos, all eight methods with 4 crops. It writes one row per (method, image):
the label, the prediction, the top-5 and their scores. `compare` prints how many rows differ (in
prediction, top-5 or scores beyond 1e-5) and exits 1 when any does. GLOCAL_COMMAND replaces the
`glocal` command (e.g. an older checkout's `python -c "..."`).
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = "clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca"
QUERY = ("SELECT method, image_id, label, prediction, top5, top5_scores FROM predictions "
         "ORDER BY method, image_id")


def glocal(*args: str, cwd: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1",
               GLOCAL_DB=str(cwd / "workspace.duckdb"))
    command = shlex.split(os.environ.get("GLOCAL_COMMAND", "glocal"))
    done = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"glocal {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def snapshot(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        glocal("models", "tiny", "--out", "models", cwd=work)
        glocal("ingest", "sample", str(SHARED / "images" / "imagenet-sample"), "--classnames",
               str(SHARED / "classnames" / "imagenet.json"), "--limit", "40", cwd=work)
        glocal("evaluate", "sample", "--model", "models/tiny-clip", "--attention-model",
               str(SHARED / "models" / "dinov2-small-imgfocus"), "--text-dataset", "imagenet",
               "--n-crops", "4", "--methods", METHODS, cwd=work)
        out.write_text(glocal("sql", QUERY, "--format", "csv", cwd=work))
    rows = list(csv.DictReader(out.open()))
    print(f"{out}: {len(rows)} predictions over {len({r['method'] for r in rows})} methods")


def read(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["method"], r["image_id"]): r for r in csv.DictReader(path.open())}


def scores(text: str) -> list[float]:
    return [float(v) for v in text.strip("[]").split(",") if v.strip()]


def compare(before: Path, after: Path) -> int:
    old, new = read(before), read(after)
    if old.keys() != new.keys():
        print(f"different rows: {len(old.keys() - new.keys())} only before, "
              f"{len(new.keys() - old.keys())} only after")
        return 1
    differ = [key for key in old
              if (old[key]["prediction"], old[key]["top5"]) != (new[key]["prediction"], new[key]["top5"])
              or max(abs(a - b) for a, b in zip(scores(old[key]["top5_scores"]),
                                                scores(new[key]["top5_scores"]))) > 1e-5]
    methods = sorted({m for m, _ in old})
    print(f"{len(old)} predictions, {len(methods)} methods ({', '.join(methods)}): {len(differ)} differ")
    for key in differ[:10]:
        print("  ", key, old[key]["top5"], "->", new[key]["top5"])
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("snapshot").add_argument("--out", type=Path, required=True)
    both = sub.add_parser("compare")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "snapshot":
        snapshot(args.out.resolve())
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
