"""One prepared check of glocal on the machine it runs on (#31): made to be run once on a lent GPU
machine, where device time is short, and dry-run on CPUs in CI so that it cannot rot.

    python benchmarks/gpu_check.py OUT_DIR            # on a GPU machine: ~8 minutes on an H100
    python benchmarks/gpu_check.py OUT_DIR --cpu      # the dry run: tiny sizes, CPU, ~1-2 minutes

A bare GPU machine first needs the environment (the command installs it; nothing else is needed)::

    python3 -m venv .venv && . .venv/bin/activate && pip install torch && pip install -e ".[test]" \\
      && python benchmarks/gpu_check.py gpu-check

Parts, each in its own process under its own time limit (a slow part is cut, not the whole):

1. the device: name, torch and CUDA versions, the dense bf16 (CPU: fp32) GEMM rate;
2. the tests that exercise the device (``GLOCAL_DEVICE``): engine, attention sources, the extractor,
   an evaluate through the flow with tiny models;
3. ``benchmarks/encode.py`` on B/16 and B/32 at N=60, bf16, eager and compiled, with the reference
   loop, on 64 images;
4. ``glocal evaluate`` of 1,000 generated images with a full-size random B/16 and the eight methods,
   with each stage's time from the workspace.

Writes one table (Markdown) to stdout and to OUT_DIR/gpu-check.md, and each part's full output to
OUT_DIR/<part>.log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EIGHT = "clip,clip_e,clip_d,waffle,cupl,wca,abs,lgca"

# per part: (time limit in seconds on a GPU, on the --cpu dry run)
LIMITS = {"device": (60, 60), "tests": (150, 240), "encode": (180, 240), "evaluate": (150, 300)}

DEVICE_INFO = r"""
import json, time, torch
cuda = torch.cuda.is_available()
device = "cuda" if cuda else "cpu"
dtype = torch.bfloat16 if cuda else torch.float32
n = 8192 if cuda else 1024
a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
for _ in range(3):
    a @ b
if cuda: torch.cuda.synchronize()
reps = 20 if cuda else 5
start = time.perf_counter()
for _ in range(reps):
    a @ b
if cuda: torch.cuda.synchronize()
rate = 2 * n ** 3 * reps / (time.perf_counter() - start)
print(json.dumps({"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
                  "cuda": torch.version.cuda, "gemm": f"{rate / 1e12:.1f} TFLOP/s ({'bf16' if cuda else 'fp32'}, {n}^2)"}))
"""

TINY_EVALUATE = r"""
import sys, torch
from pathlib import Path
from glocal.data.demo_data import generate_images
from glocal.tiny import build_tiny_clip, build_tiny_dino
work = Path(sys.argv[1]); size = sys.argv[2]; images = int(sys.argv[3])
per_class = max(1, images // 3)
generate_images(work / "images", per_class=per_class)
if size == "B16":  # full-size random ViT-B/16 (compute does not depend on weights)
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
    from glocal.tiny import load_tokenizer
    tokenizer = load_tokenizer()
    text = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16, image_size=224)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)).save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    CLIPImageProcessor().save_pretrained(work / "model")
else:
    build_tiny_clip(work / "model")
build_tiny_dino(work / "dino")
"""

# each stage's time: from the previous stage's last stored unit (the run's start for the first) to
# its own last one, read off the workspace's artifacts (the stages run one after another)
STAGE_TIMES = r"""
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute("SELECT stage, count(*), epoch(max(created_at)) FROM artifacts GROUP BY stage ORDER BY max(created_at)").fetchall()
previous, out = float(sys.argv[2]), {}
for stage, n, last in rows:
    out[stage] = {"units": n, "seconds": round(max(last - previous, 0.0), 1)}
    previous = last
print(json.dumps(out))
"""


def run_part(name: str, command: list[str], limit: int, out: Path, env: dict | None = None) -> tuple[str, str, float]:
    """(status, output, seconds): the part's own process under ``limit`` seconds; its output to OUT/<name>.log."""
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=limit)
        status, text = ("ok" if done.returncode == 0 else f"failed (exit {done.returncode})"), done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"cut at {limit} s"
        text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    seconds = time.monotonic() - start
    (out / f"{name}.log").write_text(text)
    print(f"[{name}] {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return status, text, seconds


def table_lines(text: str) -> list[str]:
    """The main table encode.py prints last (its header, separator and one row per tower)."""
    lines = text.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("| tower")), default=None)
    if start is None:
        return []
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder for gpu-check.md and each part's log")
    parser.add_argument("--cpu", action="store_true", help="the dry run: tiny sizes on the CPU (what CI runs)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    python, cpu = sys.executable, args.cpu
    device = "cpu" if cpu else "cuda"
    env = {"GLOCAL_DEVICE": device, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    limit = {name: pair[1 if cpu else 0] for name, pair in LIMITS.items()}
    lines = [f"# glocal GPU check ({'CPU dry run' if cpu else 'GPU'})", ""]
    summary = ["| part | status | seconds | result |", "|---|---|---|---|"]

    # 1. the device
    status, text, seconds = run_part("device", [python, "-c", DEVICE_INFO], limit["device"], out)
    info = json.loads(text.strip().splitlines()[-1]) if status == "ok" else {}
    summary.append(f"| device | {status} | {seconds:.0f} | {info.get('device', '?')}, torch {info.get('torch', '?')}, "
                   f"CUDA {info.get('cuda')}, GEMM {info.get('gemm', '?')} |")

    # 2. the tests that run on the device (the dry run skips them: the suite that runs it runs them all)
    if cpu:
        summary.append("| tests (cpu) | skipped | 0 | the dry run's suite runs them |")
    else:
        selection = ["tests/test_engine.py", "tests/test_extract.py", "tests/test_pipeline.py::test_evaluate_end_to_end_and_sql"]
        status, text, seconds = run_part("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection], limit["tests"], out, env)
        counts = re.findall(r"(\d+ (?:passed|failed|skipped|error)\w*)", text)
        summary.append(f"| tests ({device}) | {status} | {seconds:.0f} | {', '.join(counts) or 'no summary'} |")

    # 3. crop-and-encode: the engine against the reference loop, eager and compiled
    encode = [python, "benchmarks/encode.py", "--device", device]
    encode += ["--models", "tiny", "--images", "2", "--n-crops", "4"] if cpu else \
        ["--models", "B16", "B32", "--images", "64", "--reference-images", "8", "--n-crops", "60", "--precision", "bf16", "--batch-size", "512"]
    encode_rows = []
    # compiled: GPU only (torch.compile of a full-size tower takes minutes on 2 CPU cores; the
    # compiled path's correctness is tests/test_engine.py's, on a tiny tower)
    for label, extra in (("eager", []),) + ((("compiled", ["--compile"]),) if not cpu else ()):
        status, text, seconds = run_part(f"encode-{label}", encode + extra, limit["encode"] // (1 if cpu else 2), out)
        rows = table_lines(text)
        encode_rows += ([f"{label}:", ""] + rows + [""]) if rows else []
        summary.append(f"| encode.py {label} | {status} | {seconds:.0f} | {max(len(rows) - 2, 0)} tower rows (below) |")

    # 4. a dataset through glocal evaluate, with each stage's time
    images = 12 if cpu else 1000
    work = out / "evaluate-work"
    status, text, seconds = run_part("evaluate-setup", [python, "-c", TINY_EVALUATE, str(work), "tiny" if cpu else "B16", str(images)],
                                     limit["evaluate"], out, env)
    stages = {}
    if status == "ok":
        db = str(work / "glocal.duckdb")
        glocal = [python, "-m", "app.cli"]
        run_part("ingest", [*glocal, "ingest", "generated", str(work / "images"), "--db", db], limit["evaluate"], out, env)
        started = time.time()
        status, text, seconds = run_part("evaluate", [*glocal, "evaluate", "generated", "--db", db, "--model", str(work / "model"),
                                                      "--attention-model", str(work / "dino"), "--methods", EIGHT,
                                                      "--n-crops", "4" if cpu else "60", "--batch-size", "32" if cpu else "512"],
                                         limit["evaluate"], out, env)
        if status == "ok":
            _, stage_text, _ = run_part("stage-times", [python, "-c", STAGE_TIMES, db, str(started)], 60, out)
            stages = json.loads(stage_text.strip().splitlines()[-1]) if stage_text.strip() else {}
    shown = ", ".join(f"{stage} {v['seconds']} s ({v['units']} units)" for stage, v in stages.items())
    summary.append(f"| evaluate {images} images, 8 methods | {status} | {seconds:.0f} | "
                   f"{images / seconds:.1f} images/s end to end; {shown or 'no stage times'} |")

    lines += summary + ["", "Crop-and-encode (benchmarks/encode.py rows):", ""] + encode_rows
    text = "\n".join(lines) + "\n"
    (out / "gpu-check.md").write_text(text)
    print(text)
    failed = [row for row in summary[2:] if "| failed" in row]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
