"""The command line's habits: --version, help on every flag with its default, clean exit on a
closed pipe, bad requests refused before Prefect starts, rows as table / CSV / JSON."""

import argparse
import csv
import json
import os
import subprocess
import sys

import pytest

from app.cli import build_parser, main


def subcommands():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_version(capsys):
    from glocal import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"glocal {__version__}"


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_flag_has_help_and_says_its_default(command):
    sub = subcommands()[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"glocal {command} {action.option_strings or action.dest} has no help"
    text = sub.format_help()
    assert "%%" not in text and "%(" not in text
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and isinstance(action.default, (int, str)):
            flat = " ".join(text.split())
            assert f"(default: {action.default})" in flat or "default" in action.help, (command, action.option_strings)


def test_compare_help_prints_95_percent():
    assert "95% interval" in " ".join(subcommands()["compare"].format_help().split())


def test_methods_lines_fit_the_terminal_and_keep_whole_summaries(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "(B, C)." in " ".join(out.split())  # summaries end where their sentence ends


@pytest.fixture
def workspace(tmp_path):
    from storage import Catalog
    from storage.catalog import insert_rows

    catalog = Catalog(tmp_path / "ws.duckdb")
    with catalog.connect() as con:
        con.execute("INSERT INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status) "
                    "VALUES ('r1', 'd', 'b', 'None', '[]', '{}', 't', 'done')")
        con.execute("INSERT INTO datasets (dataset, root, classnames, shards, shard_dir) VALUES ('d', '.', '[\"a\", \"b\"]', 1, 'shards')")
        insert_rows(con, "accuracy", ("run_id", "method", "preset_hash", "images", "top1_pct"), [("r1", "clip", "h", 40, 12.5), ("r1", "cupl", "h", 40, 25.0)])
    return str(catalog.path)


def test_runs_as_table_csv_json_and_to_a_file(workspace, tmp_path, capsys):
    assert main(["runs", "--db", workspace]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run_id", "dataset", "backbone", "method", "setting", "images", "top1_pct", "top5_pct", "mean_per_class_recall_pct",
                                "gflop_per_image"]
    assert lines[0].index("method") == lines[1].index("clip")  # aligned columns
    assert main(["runs", "--db", workspace, "--format", "csv"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[1:] == [["r1", "d", "b", "clip", "", "40", "12.5", "", "", ""], ["r1", "d", "b", "cupl", "", "40", "25.0", "", "", ""]]
    out = tmp_path / "runs.json"
    assert main(["runs", "--db", workspace, "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == [
        {"run_id": "r1", "dataset": "d", "backbone": "b", "method": "clip", "setting": "", "images": 40, "top1_pct": 12.5,
         "top5_pct": None, "mean_per_class_recall_pct": None, "gflop_per_image": None},
        {"run_id": "r1", "dataset": "d", "backbone": "b", "method": "cupl", "setting": "", "images": 40, "top1_pct": 25.0,
         "top5_pct": None, "mean_per_class_recall_pct": None, "gflop_per_image": None}]
    assert main(["sql", "SELECT method, images FROM accuracy ORDER BY method", "--db", workspace, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"method": "clip", "images": 40}, {"method": "cupl", "images": 40}]


def test_runs_name_look_alike_rows_by_what_differs(workspace, capsys):
    """A sweep's ABS rows, and a preset run beside them: each named by its preset and swept value."""
    from storage import Catalog

    with Catalog(workspace).connect() as con:
        for run_id, params in [("r2", {"methods": ["abs"], "presets": {"abs": "abs-code"}, "overrides": {"abs": {"tau": 0.5}}}),
                               ("r3", {"methods": ["abs"], "overrides": {"abs": {"tau": 1.0}}}),
                               ("r4", {"methods": ["abs"], "overrides": {"abs": {"tau": 2.0}}})]:
            con.execute("INSERT INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status, params) "
                        "VALUES (?, 'd', 'b', 'None', '[\"abs\"]', '{}', 't', 'done', ?)", [run_id, json.dumps(params)])
            con.execute("INSERT INTO accuracy (run_id, method, preset_hash, images, top1_pct) VALUES (?, 'abs', 'h', 40, 50.0)", [run_id])
    assert main(["runs", "--db", workspace, "--format", "json"]) == 0
    setting = {(r["run_id"], r["method"]): r["setting"] for r in json.loads(capsys.readouterr().out)}
    assert setting == {("r1", "clip"): "", ("r1", "cupl"): "", ("r2", "abs"): "preset=abs-code, tau=0.5",
                       ("r3", "abs"): "preset=default, tau=1.0", ("r4", "abs"): "preset=default, tau=2.0"}


def test_a_closed_pipe_ends_quietly(workspace):
    """`glocal sql ... | head -1`: the reader leaves; glocal stops without a traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "sql", "SELECT * FROM range(300000)", "--db", workspace],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_bad_requests_are_refused_before_prefect_starts(workspace, monkeypatch, capsys):
    """Each of these would otherwise surface only after the temporary server's 10+ s start, and
    three times; here: exit 2 and one line, and the flow is never called."""
    with capsys.disabled():  # Prefect binds its console handler to the stderr of its first import: not capsys's
        import flows.evaluate
        import flows.sweep

    def never(*args, **kwargs):
        raise AssertionError("the flow was started")

    monkeypatch.setattr(flows.evaluate, "evaluate", never)
    monkeypatch.setattr(flows.sweep, "sweep", never)
    cases = [
        (["evaluate", "d", "--model", "m", "--methods", "clip,nope"], "unknown method"),
        (["evaluate", "missing", "--model", "m", "--methods", "clip"], "not ingested"),
        (["evaluate", "d", "--model", "m", "--preset", "abs=abs-nope", "--methods", "abs"], "unknown preset"),
        (["evaluate", "d", "--model", "m", "--preset", "abs"], "--preset takes METHOD=PRESET"),
        (["evaluate", "d", "--model", "m", "--workers", "2"], "--workers needs --cluster"),
        (["evaluate", "d", "--model", "m", "--score-memory", "lots"], "--score-memory takes bytes"),
        (["sweep", "d", "--model", "m", "--method", "clip", "--param", "n_crops=1,2"], "no parameters to sweep"),
        (["evaluate", "d", "--model", "/nonexistent/clip", "--methods", "clip"], "/nonexistent/clip: no such model directory"),
    ]
    for argv, message in cases:
        with monkeypatch.context() as m:
            m.setenv("GLOCAL_TEXT_DATA", "/nonexistent")
            assert main([*argv, "--db", workspace]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_tiny_models_command_writes_loadable_models_without_third_party_bars(tmp_path):
    """`glocal models tiny` (the README's offline route): outside a terminal no transformers bar
    ("Writing model shards") leaks into the log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GLOCAL_PROGRESS", None)
    done = subprocess.run([sys.executable, "-m", "app.cli", "models", "tiny", "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Writing model shards" not in done.stderr and "it/s]" not in done.stderr, done.stderr
    assert f"--model {tmp_path / 'm' / 'tiny-clip'}" in done.stdout
    from glocal.backbones import load_backbone

    assert load_backbone(str(tmp_path / "m" / "tiny-clip")).grid > 0


def test_flow_tables_are_left_to_the_cli(capsys, monkeypatch):
    """Sweep and reproduce tables: a flow logs its table for a deployment's log, but under the CLI
    (which prints it to stdout) it does not, so a terminal shows it once."""
    with capsys.disabled():
        from flows import log_table
    monkeypatch.delenv("GLOCAL_CLI", raising=False)
    log_table("the table")
    assert capsys.readouterr().out == "the table\n"
    monkeypatch.setenv("GLOCAL_CLI", "1")
    log_table("the table")
    assert capsys.readouterr().out == ""
    monkeypatch.delenv("GLOCAL_CLI")
    assert main(["presets"]) == 0 and "GLOCAL_CLI" not in os.environ  # main restores the environment


def test_a_failing_flow_reaches_the_console_once():
    """Prefect's traceback and "Finished in state Failed" are kept off the console under the CLI;
    other log lines pass, and so does an error without a traceback."""
    import logging

    from app.commands.common import OneErrorLine

    def record(level, message, exc_info=None):
        return logging.LogRecord("prefect.flow_runs", level, __file__, 1, message, None, exc_info)

    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    quiet = OneErrorLine()
    assert not quiet.filter(record(logging.ERROR, "Encountered exception during execution", exc_info))
    assert not quiet.filter(record(logging.ERROR, "Finished in state Failed('Flow run encountered an exception.')"))
    assert quiet.filter(record(logging.INFO, "encode: shard 1/5 done"))
    assert quiet.filter(record(logging.ERROR, "a failure without a traceback"))


@pytest.mark.parametrize("command", ["evaluate", "sweep", "eval"])
def test_run_flags_are_generated_from_the_typed_request(command):
    """Every flag field of glocal.run.request.RunRequest is a flag of evaluate, sweep and eval, with
    the field's help and default, and a number's bound: a new run option is declared once."""
    from glocal.run.request import flag_fields

    actions = {a.dest: a for a in subcommands()[command]._actions}
    assert {f.name for f in flag_fields()} <= set(actions)
    for f in flag_fields():
        action = actions[f.name]
        assert action.option_strings == [f"--{f.name.replace('_', '-')}"]
        assert action.help == f.metadata["help"] and action.default == f.default
        if f.metadata["minimum"] == 1:
            with pytest.raises(argparse.ArgumentTypeError, match="positive integer"):
                action.type("0")


def test_the_request_reaches_the_flow_whole(monkeypatch, workspace):
    """The command builds one RunRequest from its flags and hands it to the flow unchanged."""
    import flows.evaluate
    from glocal.run.request import RunRequest

    seen = {}
    monkeypatch.setattr(flows.evaluate, "evaluate", lambda request, db: seen.update(request=request, db=db) or {"table": "run r"})
    monkeypatch.setattr("app.commands.evaluate.check_request", lambda *args, **kwargs: None)
    assert main(["evaluate", "d", "--model", "m", "--methods", "clip,abs", "--preset", "abs=abs-code", "--batch-size", "8", "--cluster",
                 "--workers", "3", "--score-memory", "1G", "--db", workspace]) == 0
    assert seen["request"] == RunRequest(dataset="d", methods=("clip", "abs"), presets={"abs": "abs-code"}, model="m", batch_size=8,
                                         cluster="local", workers=3, score_memory="1G")
    assert seen["db"] == workspace


@pytest.mark.parametrize("signum, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_signal_re_wrapped_by_a_library_still_exits_as_a_stop(monkeypatch, tmp_path, capsys, signum, code):
    """A signal's exception raised inside a library can reach the boundary as another error
    (pydantic turns one raised mid-serialisation into "Error calling function `_ser_model`:
    TerminationSignal", which read as bad input, exit 2): the received signal decides."""
    import os
    import signal
    import time

    import app.commands.results as results
    from app.cli import main

    def stopped_mid_serialisation(args):
        try:
            os.kill(os.getpid(), getattr(signal, signum))
            time.sleep(10)
        except KeyboardInterrupt:
            pass
        raise ValueError("Error calling function `_ser_model`: TerminationSignal")

    monkeypatch.setattr(results, "cmd_runs", stopped_mid_serialisation)
    assert main(["runs", "--db", str(tmp_path / "ws.duckdb")]) == code
    assert "the same command resumes" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
