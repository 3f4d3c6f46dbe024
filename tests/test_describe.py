"""The describe stage against a small OpenAI-compatible server on 127.0.0.1 (real openai client,
real HTTP): good answers, a malformed answer, a 429 then success, a timeout, a rejected key."""

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from glocal.text.describe import DescribeConfig, load_prompt_set, parse_answer

KEY = "sk-test-secret-0123456789"
LONG = "x" * 300


class StubLLM:
    """Answers by the class named in the prompt: 'slow ...' sleeps past the client timeout,
    'rate ...' gets one 429 per prompt before answering, 'broken ...' gets a body that is not
    JSON, 'blank ...' gets only blank lines; any other class gets two lines specific to the prompt,
    one shared by all prompts, a duplicate, an empty and an over-long line."""

    def __init__(self, classes=None):
        self.classes = classes or CLASSES
        self.requests = Counter()
        self.seen_rate: set[str] = set()
        self.auth_fail = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                n = next(c for c in stub.classes if c in prompt)
                cls = next((name for name in ("slow", "rate", "broken", "blank", "echo", "refuse", "chatty") if name in n), n)
                stub.requests[cls] += 1
                if stub.auth_fail or self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._send(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                if cls == "echo":  # a careless server: a 4xx whose body echoes the request headers
                    return self._send(400, {"error": {"message": f"bad request; headers were {dict(self.headers)}", "type": "invalid"}})
                if cls == "refuse":
                    return self._send(200, self._answer("I'm sorry, but I can't help with that request."))
                if cls == "chatty":
                    return self._send(200, self._answer(f"Sure! Here are 3 sentences:\n1. A {n} sings at dawn ({prompt.split()[0]}).\n"
                                                        f"2. A {n} has a bright crest ({prompt.split()[0]})."))
                if cls == "slow":
                    threading.Event().wait(3.0)
                    return self._send(200, self._answer("too late."))
                if cls == "rate" and prompt not in stub.seen_rate:
                    stub.seen_rate.add(prompt)
                    return self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}})
                if cls == "broken":
                    return self._send(200, b'{"id": "x", "choices": [')
                if cls == "blank":
                    return self._send(200, self._answer("\n  \n"))
                w = prompt.split()[0]
                text = f"1. A {n} as asked by {w}.\n- The {n} has a distinctive shape ({w}).\n\nA {n} in its natural setting.\n" \
                       f"a {n} as asked by {w}\n{LONG}"
                return self._send(200, self._answer(text))

            def _answer(self, text):
                return {"id": "c1", "object": "chat.completion", "created": 0, "model": "stub",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}

            def _send(self, status, payload):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm(monkeypatch):
    stub = StubLLM()
    monkeypatch.setenv("GLOCAL_LLM_BASE_URL", stub.url)
    monkeypatch.setenv("GLOCAL_LLM_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield stub
    stub.close()


CLASSES = ["tench", "goldfish", "rate limited", "broken answer", "slow thing", "blank answer", "robin"]
# timeout_s: far above a loaded machine's stub answer (ms), far below the slow class's 3 s
FAST = dict(prompt_set="cupl-short-v1", timeout_s=1.0, max_attempts=3, backoff_s=0.01)


def _dataset(db, classes=CLASSES):
    from storage import Catalog

    Catalog(db).register_dataset("toy", "/nowhere", classes, 0, "/nowhere", [], [])


def test_parse_answer_counts_what_it_drops():
    seen: set[str] = set()
    kept, dropped = parse_answer("1. A red fish.\n\n- a red fish\n* A fish in a pond!\n" + "y" * 40, seen, max_chars=30)
    assert kept == ["A red fish.", "A fish in a pond!"]
    assert dropped == Counter(empty=1, duplicate=1, too_long=1)
    kept, dropped = parse_answer("A fish in a pond.\nGreen scales.", seen, max_chars=30)  # duplicates across answers
    assert kept == ["Green scales."] and dropped == Counter(duplicate=1)


def test_prompt_sets_are_data():
    cupl = load_prompt_set("cupl-v1")
    assert len(cupl.prompts) == 5 and all("{classname}" in p for p in cupl.prompts)
    with pytest.raises(ValueError, match="unknown prompt set 'nope'.*cupl-v1"):
        load_prompt_set("nope")


def test_generate_against_stub_server(llm, tmp_path):
    from storage import Catalog
    from tasks.describe import generate_descriptions

    db = str(tmp_path / "d.duckdb")
    _dataset(db)
    report = generate_descriptions(db, "toy", "stub-model", FAST)
    set_id = report["set_id"]
    assert set_id == "toy:stub-model:cupl-short-v1:v1" and report["status"] == "partial"
    assert report["classes_ok"] == 4
    assert set(report["failed"]) == {"broken answer", "slow thing", "blank answer"}
    assert "malformed answer" in report["failed"]["broken answer"] and "after 3 attempts" in report["failed"]["broken answer"]
    assert "no usable sentence" in report["failed"]["blank answer"]
    assert "timeout" in report["failed"]["slow thing"]
    lists = Catalog(db).description_lists(set_id)
    # per prompt: 2 prompt-specific lines + 1 shared line, a case/punctuation duplicate, an empty
    # line and a too-long one; the shared line of the second prompt is a duplicate across answers
    assert lists[0] == ["A tench as asked by Describe.", "The tench has a distinctive shape (Describe).", "A tench in its natural setting.",
                        "A tench as asked by How.", "The tench has a distinctive shape (How)."]
    assert lists[2][0] == "A rate limited as asked by Describe." and len(lists[2]) == 5
    assert lists[3] == [] and lists[4] == [] and lists[5] == []
    assert report["sentences"] == 4 * 5 and report["dropped"] == {"empty": 4 * 2 + 3, "duplicate": 4 * 3, "too_long": 4 * 2,
                                                                   "refusal": 0, "preamble": 0}
    with duckdb.connect(db, read_only=True) as con:
        rows = dict((r[0], r[1:]) for r in con.execute(
            "SELECT classname, status, kept, dropped_empty, dropped_duplicate, dropped_too_long, attempts FROM description_classes WHERE set_id = ?",
            [set_id]).fetchall())
        assert rows["tench"] == ("ok", 5, 2, 3, 2, 2)  # 2 prompts, 1 attempt each
        assert rows["rate limited"][-1] == 4  # each of the 2 prompts: one 429, then success
        assert rows["slow thing"][:2] == ("failed", 0) and rows["slow thing"][-1] == 3
        assert con.execute("SELECT count(*) FROM descriptions WHERE set_id = ?", [set_id]).fetchone()[0] == sum(map(len, lists))
        dump = " ".join(str(r) for t in ("description_sets", "description_classes", "descriptions")
                        for r in con.execute(f"SELECT * FROM {t}").fetchall())
    assert KEY not in dump
    assert llm.requests["rate"] == 4 and llm.requests["slow"] == 3 and llm.requests["tench"] == 2 and llm.requests["broken"] == 3

    # a rerun asks only about the classes still missing
    before = Counter(llm.requests)
    again = generate_descriptions(db, "toy", "stub-model", FAST)
    assert again["set_id"] == set_id
    assert {k for k in llm.requests if llm.requests[k] != before[k]} == {"broken", "slow", "blank"}
    assert again["classes_ok"] == 4 and again["status"] == "partial"


def test_rejected_key_stops_with_a_clear_error_and_keeps_nothing_secret(llm, tmp_path, monkeypatch):
    from tasks.describe import generate_descriptions

    db = str(tmp_path / "d.duckdb")
    _dataset(db, ["tench", "goldfish"])
    monkeypatch.setenv("GLOCAL_LLM_API_KEY", "sk-wrong-key")
    with pytest.raises(RuntimeError, match="rejected the API key") as info:
        generate_descriptions(db, "toy", "stub-model", FAST)
    assert "sk-wrong-key" not in str(info.value)
    monkeypatch.delenv("GLOCAL_LLM_API_KEY")
    with pytest.raises(ValueError, match="GLOCAL_LLM_API_KEY"):
        generate_descriptions(db, "toy", "stub-model", FAST)


def test_a_rejected_key_with_more_classes_than_workers_ends_the_set_with_one_clear_error(llm, tmp_path, monkeypatch):
    """Classes still queued when the first 401 comes back are cancelled, not raised as CancelledError,
    and the set is closed (partial), not left "generating"."""
    from tasks.describe import generate_descriptions

    db = str(tmp_path / "d.duckdb")
    names = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray", "cock"]
    llm.classes = names
    _dataset(db, names)
    monkeypatch.setenv("GLOCAL_LLM_API_KEY", "sk-wrong-key")
    with pytest.raises(RuntimeError, match="rejected the API key"):
        generate_descriptions(db, "toy", "stub-model", FAST, concurrency=2)
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT status FROM description_sets").fetchall() == [("partial",)]


def test_server_errors_never_carry_the_key_or_url_credentials(llm, tmp_path, monkeypatch, capfd):
    """A 4xx body echoing the Authorization header, and a base URL with user:password that 404s:
    neither the key nor the password reaches the exception, the catalog or the output."""
    import duckdb

    from tasks.describe import generate_descriptions

    db = str(tmp_path / "d.duckdb")
    llm.classes = [*CLASSES, "echo fish"]
    _dataset(db, ["echo fish"])
    with pytest.raises(RuntimeError) as info:
        generate_descriptions(db, "toy", "stub-model", FAST)
    with duckdb.connect(db, read_only=True) as con:
        stored = str(con.execute("SELECT * FROM description_classes").fetchall()) + str(con.execute("SELECT * FROM description_sets").fetchall())
    assert "400" in str(info.value) and "***" in str(info.value)
    monkeypatch.setenv("GLOCAL_LLM_BASE_URL", llm.url.replace("http://", "http://alice:pa55word@") + "/nowhere")
    with pytest.raises(RuntimeError) as missing:
        generate_descriptions(db, "toy", "stub-model", FAST)
    out = capfd.readouterr()
    for text in (str(info.value), str(missing.value), stored, out.out, out.err):
        assert KEY not in text and "pa55word" not in text


def test_refusals_and_preambles_are_dropped_and_counted(llm, tmp_path):
    """An LLM that refuses gives a class no sentences (the set is partial, not complete); the
    chatter around a real answer is dropped and counted per class."""
    import duckdb

    from tasks.describe import generate_descriptions

    db = str(tmp_path / "d.duckdb")
    llm.classes = [*CLASSES, "refuse thing", "chatty bird"]
    _dataset(db, ["refuse thing", "chatty bird"])
    report = generate_descriptions(db, "toy", "stub-model", FAST)
    assert report["status"] == "partial" and list(report["failed"]) == ["refuse thing"]
    assert report["dropped"]["refusal"] >= 1 and report["dropped"]["preamble"] >= 1
    with duckdb.connect(db, read_only=True) as con:
        rows = dict(con.execute("SELECT classname, dropped_preamble FROM description_classes").fetchall())
        sentences = [r[0] for r in con.execute("SELECT sentence FROM descriptions").fetchall()]
    assert rows["chatty bird"] >= 1 and sentences and all("chatty bird" in x and not x.endswith(":") for x in sentences)
    assert not any("sorry" in x.lower() for x in sentences)


def test_description_files_with_bad_entries_or_encoding_name_the_file(tmp_path):
    from glocal.text.files import align_descriptions, load_descriptions

    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"tench": ["a fish.", None, {"a": 1}, True], "goldfish": ["orange."]}))
    with pytest.raises(ValueError, match=r"odd.json: 1 class\(es\) have entries that are not sentences .* 'tench': \[None, \{'a': 1\}, True\]"):
        load_descriptions(odd)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"tench": ["un poisson vert \u00e0 l\u2019eau"]}'.encode("utf-8").replace(b"\xc3\xa0", b"\xe0"))
    with pytest.raises(ValueError, match="latin.json: not UTF-8 text"):
        load_descriptions(latin)
    extra = {"tench": ["a fish."], "goldfish": ["orange."], "shark": ["big."], "whale": ["bigger."]}
    _, report = align_descriptions(["tench", "goldfish"], extra)
    assert report.unused_keys == ["shark", "whale"] and "2 key(s) match no class and were ignored" in report.lines()[0]


def test_import_json_creates_a_set_once(tmp_path):
    from storage import Catalog
    from tasks.describe import import_descriptions

    db = str(tmp_path / "d.duckdb")
    _dataset(db, ["tench", "goldfish"])
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"tench": ["a green fish.", "a fish held by an angler."], "goldfish": ["a small orange fish."]}))
    first = import_descriptions(db, "toy", str(path))
    assert first["status"] == "complete" and first["sentences"] == 3
    assert import_descriptions(db, "toy", str(path))["set_id"] == first["set_id"]
    assert Catalog(db).description_lists(first["set_id"]) == [["a green fish.", "a fish held by an angler."], ["a small orange fish."]]
    path.write_text(json.dumps({"tench": ["a green fish."]}))
    with pytest.raises(ValueError, match="goldfish") as missing:
        import_descriptions(db, "toy", str(path))
    # the remedy names what a command-line user can type, not Python keyword arguments
    assert "--lenient" in str(missing.value) and "keys=" not in str(missing.value) and "on_missing" not in str(missing.value)


def test_strict_import_says_when_same_named_classes_share_sentences(tmp_path):
    """A name-keyed file cannot tell ImageNet's two "missile" classes apart: they share the key's
    sentences, and the import's notes say which classes did (never silently)."""
    from storage import Catalog
    from tasks.describe import import_descriptions

    db = str(tmp_path / "d.duckdb")
    _dataset(db, ["missile", "tench", "missile"])
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"missile": ["a rocket."], "tench": ["a green fish."]}))
    report = import_descriptions(db, "toy", str(path))
    assert Catalog(db).description_lists(report["set_id"]) == [["a rocket."], ["a green fish."], ["a rocket."]]
    assert report["notes"] == ["duplicate class names share descriptions: 'missile' at [0, 2]"]


def test_describe_config_defaults_are_cupl_like():
    cfg = DescribeConfig()
    assert cfg.temperature == 0.99 and cfg.max_attempts >= 3
