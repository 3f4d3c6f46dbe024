"""`glocal describe` against a real OpenAI-compatible server: `transformers serve` (transformers 5)
serving a tiny random chat model built here, on 127.0.0.1, started as a user starts it. The
answers are gibberish: the test checks the protocol, the stored set, what was dropped and why,
and that a rerun continues the same set. glocal itself runs in-process (its installed command is
tested elsewhere), so the test pays for one server start, the LLM's."""

import contextlib
import io
import signal

import duckdb
import pytest

from llm_server import build_tiny_chat_model
from servers import BIN, clean_env, free_port, group_alive, start, stop, wait_until_up

pytestmark = pytest.mark.slow

KEY = "sk-local-test-secret"


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    model = build_tiny_chat_model(root / "tiny-chat")
    port, log = free_port(), root / "serve.log"
    child = start([str(BIN / "transformers"), "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                  log, clean_env())
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", child, log, 180)
        yield {"url": f"http://127.0.0.1:{port}/v1", "model": str(model), "log": log}
    finally:
        stop(child, signal.SIGINT)
    assert group_alive(child.pid) == []


def classes(db: str) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute("SELECT set_id, class_index, status, kept, dropped_empty + dropped_duplicate + dropped_too_long + dropped_refusal"
                           " + dropped_preamble, attempts, error FROM description_classes ORDER BY class_index").fetchall()


def test_describe_generates_a_set_through_transformers_serve_and_a_rerun_continues_it(llm_server, prefect_server, tmp_path, monkeypatch):
    from app.cli import main
    from glocal.data.demo_data import generate_images
    from glocal.text.describe import load_prompt_set
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "ws.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes", per_class=1)), shard_size=3)
    prompts = len(load_prompt_set("cupl-v1").prompts)
    monkeypatch.setenv("GLOCAL_LLM_BASE_URL", llm_server["url"])
    monkeypatch.setenv("GLOCAL_LLM_API_KEY", KEY)  # from the environment, as a user gives it
    command = ["describe", "shapes", "--llm-model", llm_server["model"], "--db", db, "--no-rescore", "--concurrency", "2"]

    def glocal(*more: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            return main([*command, *more]), err.getvalue()

    def served() -> int:
        return llm_server["log"].read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')

    # 1. answers slower than a 10 ms timeout: every class fails, is stored as failed with the reason, exit 3
    code, err = glocal("--timeout", "0.01", "--max-attempts", "1")
    assert code == 3, err[-3000:]
    first = classes(db)
    assert len(first) == 3 and {row[2] for row in first} == {"failed"}
    assert all(row[6].startswith("timeout after 0.01s (after 1 attempts") and row[3] == 0 for row in first), first
    set_id = first[0][0]

    # 2. the same command with time to answer: the same set is continued, every class asked every prompt
    before = served()
    code, err = glocal("--max-tokens", "24")
    assert code == 0, err[-3000:]
    second = classes(db)
    assert {row[0] for row in second} == {set_id} and {row[2] for row in second} == {"ok"}  # v1 continued, not a new version
    assert served() - before >= 3 * prompts  # one chat completion per (class, prompt) at least; retries of malformed answers add more
    with duckdb.connect(db, read_only=True) as con:
        sentences = con.execute("SELECT class_index, sentence FROM descriptions WHERE set_id = ? ORDER BY class_index, slot", [set_id]).fetchall()
        status = con.execute("SELECT status FROM description_sets WHERE set_id = ?", [set_id]).fetchone()[0]
    assert status == "complete"
    for _, index, _, kept, dropped, attempts, error in second:
        mine = [s for c, s in sentences if c == index]
        assert kept == len(mine) >= 1 and error is None and attempts >= prompts and dropped >= 0
        # what was kept passed the answer rules: one line, not empty, not too long, no repeat
        assert all(s.strip() and "\n" not in s and len(s) <= 250 for s in mine)
        assert len({" ".join(s.casefold().rstrip(".!").split()) for s in mine}) == len(mine)
    assert KEY.encode() not in open(db, "rb").read()  # the key came from the environment and stayed there
