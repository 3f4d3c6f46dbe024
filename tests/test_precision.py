"""--precision (#30): resolved before compute (auto: bf16 on GPUs and native-bf16 CPUs), part of
the features' key (a bf16 encode is never reused by an fp32 run, and is reused by a bf16 one),
recorded in SQL's stage_time, and a bad value is one line with exit 2."""

import pytest

from glocal.run.plan import resolve_precision


def test_auto_and_explicit_precisions_resolve(monkeypatch):
    import glocal.run.plan as plan

    monkeypatch.delenv("GLOCAL_PRECISION", raising=False)
    assert resolve_precision("fp16", "cpu") == "fp16" and resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("auto", "cuda:1") == "bf16" and resolve_precision(None, "cuda") == "bf16"
    monkeypatch.setattr(plan, "native_bf16_cpu", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(plan, "native_bf16_cpu", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("GLOCAL_PRECISION", "bf16")
    assert resolve_precision(None, "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"  # the flag wins
    with pytest.raises(ValueError, match="--precision 'fp8': choose fp32, bf16, fp16 or auto"):
        resolve_precision("fp8", "cpu")


def test_this_machines_flags_are_read():
    from glocal.run.plan import native_bf16_cpu

    flags = open("/proc/cpuinfo").read()
    assert native_bf16_cpu() == ("avx512_bf16" in flags or "amx_bf16" in flags)


@pytest.mark.usefixtures("prefect_server")
def test_a_bf16_encode_is_not_reused_by_fp32_and_is_by_bf16(tmp_path, tiny_clip_dir):
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from storage import Catalog
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "glocal.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=2)), shard_size=4)
    fields = dict(dataset="shapes", model=str(tiny_clip_dir), methods=["clip", "wca"], db=db, n_crops=3)
    catalog = Catalog(db)

    def encode_row(precision):
        run = evaluate(**fields, precision=precision)
        _, rows, _ = catalog.query(f"SELECT status, units_computed, precision FROM stage_time WHERE run_id = '{run['run_id']}' AND stage = 'encode'")
        return run["run_id"], rows[0]

    bf16_run, row = encode_row("bf16")
    assert row == ("computed", 2, "bf16")
    fp32_run, row = encode_row("fp32")
    assert row == ("computed", 2, "fp32") and fp32_run != bf16_run  # not the bf16 features: another key, another run
    assert encode_row("bf16") == (bf16_run, ("reused", 0, "bf16"))
    _, keys, _ = catalog.query("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'encode'")
    assert keys[0][0] == 2


def test_a_bad_precision_is_one_line_and_exit_2(tmp_path, capsys, tiny_clip_dir):
    from app.cli import main
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=1)), shard_size=4)
    capsys.readouterr()
    code = main(["evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip", "--precision", "fp8", "--db", db])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--precision 'fp8': choose fp32, bf16, fp16 or auto" in err[0]
