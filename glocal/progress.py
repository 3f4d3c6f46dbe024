"""Progress bars for long stages: on a terminal only (logs and CI stay clean), to stderr."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

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


# The bars of the stages running in this process, innermost last: work deep inside a stage (an
# image encoded, a block of sentences embedded) ticks the innermost one without being handed it.
_ACTIVE: list = []


@contextmanager
def stage_bar(total: int, desc: str, unit: str = "it", initial: int = 0):
    """A progress bar that ``tick`` advances from inside the stage's compute."""
    bar = progress(total, desc, unit, initial)
    _ACTIVE.append(bar)
    try:
        yield bar
    finally:
        _ACTIVE.remove(bar)
        bar.close()


def tick(n: int = 1) -> None:
    """Advance the innermost stage bar of this process by ``n`` (nothing when none is open, e.g.
    on a Dask worker, whose shards count when they finish)."""
    if _ACTIVE:
        _ACTIVE[-1].update(n)


def reach(bar, value: int) -> None:
    """Move ``bar`` to at least ``value`` (a finished shard's exact count, ticked or not)."""
    if value > bar.n:
        bar.update(value - bar.n)
