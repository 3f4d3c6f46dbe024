"""Progress bars for long stages: on a terminal only (logs and CI stay clean), to stderr."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def bars_wanted() -> bool:
    """Bars on a terminal; GLOCAL_PROGRESS=1 forces them (a job runner with a TTY-less stderr),
    GLOCAL_PROGRESS=0 turns them off."""
    forced = os.environ.get("GLOCAL_PROGRESS")
    return forced == "1" if forced in ("0", "1") else sys.stderr.isatty()


def quiet_third_party_bars() -> None:
    """Where glocal shows no bars, neither do transformers / huggingface_hub ("Loading weights",
    "Writing model shards"): their switch is read when they are first imported."""
    if not bars_wanted():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def progress(total: int, desc: str, unit: str = "it", initial: int = 0):
    disable = not bars_wanted()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=sys.stderr, leave=False, dynamic_ncols=True)
