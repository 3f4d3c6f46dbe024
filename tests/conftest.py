import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DO_NOT_TRACK", "1")
# --precision auto picks bf16 on CPUs with native bf16 (these machines have it): the suite's runs
# stay fp32 unless a test names another precision (tests/test_precision.py covers auto)
os.environ.setdefault("GLOCAL_PRECISION", "fp32")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared/data: skipped in a user's clone without it, a failure in CI."""
    if not (SHARED / "README.md").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared data folder {SHARED} is missing")
        pytest.skip(f"needs the shared data folder {SHARED} (absent in this clone)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from glocal.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from glocal.backbones import load_backbone

    return load_backbone(str(tiny_clip_dir))


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory):
    from glocal.tiny import build_tiny_dino

    return build_tiny_dino(tmp_path_factory.mktemp("models") / "tiny-dino")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One ephemeral Prefect server for the whole session (starting one costs seconds)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shell_prefect_home(tmp_path_factory) -> str:
    """The PREFECT_HOME of the tests that run the installed `glocal` as a shell would (its own
    temporary Prefect server): one for the session, so its database is created and migrated once
    (~6 s), not by every such test."""
    return str(tmp_path_factory.mktemp("shell-prefect-home"))

