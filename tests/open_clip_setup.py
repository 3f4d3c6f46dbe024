"""open_clip for the tests, beside our CPU torch (a test set-up workaround, never glocal's).

open_clip imports torchvision, and the registry's torchvision wheel links CUDA libraries: its
import fails beside the CPU torch (``operator torchvision::nms does not exist``) and, installed in
the test environment, it would break transformers' image processors in every glocal process the
tests start. So `.ci/run` installs open_clip, torchvision and timm into ``.test-deps/open_clip``
(``pip install --no-deps --target``), and only the tests that need them put that folder on their
import path, after defining the schemas of torchvision's two ops so that it imports (open_clip
needs only its PIL transforms)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

DEPS = Path(__file__).resolve().parents[1] / ".test-deps" / "open_clip"
INSTALL = ("pip install -q --no-deps --target .test-deps/open_clip open_clip_torch==3.3.0 torchvision==0.28.0 timm==1.0.31 "
           "ftfy wcwidth")


@contextlib.contextmanager
def open_clip_on_path():
    """open_clip, with ``.test-deps/open_clip`` on the import path only while the block runs: a
    process this one spawns afterwards (Dask's workers inherit the import path) must not find
    that torchvision, which fails beside the CPU torch. Skips naming how to get it when absent
    (a failure under CI=true, where .ci/run installs it)."""
    if not DEPS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {DEPS} is missing ({INSTALL})")
        pytest.skip(f"open_clip for the tests is not installed: {INSTALL}")
    added = str(DEPS) not in sys.path
    if added:
        sys.path.append(str(DEPS))  # after site-packages: the environment's own packages win
    try:
        yield _import()
    finally:
        if added:
            sys.path.remove(str(DEPS))


def _import():
    import torch

    if not getattr(_import, "library", None):
        library = torch.library.Library("torchvision", "DEF")
        try:
            library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:  # a working torchvision defined them already
            pass
        _import.library = library  # kept alive: the definitions live as long as the library object
    import open_clip

    return open_clip
