"""Progress bars for long stages: on a terminal only (logs and CI stay clean), to stderr."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(total: int, desc: str, unit: str = "it", initial: int = 0):
    # GLOCAL_PROGRESS=1 forces bars (e.g. under a job runner that captures a TTY-less stderr)
    disable = os.environ.get("GLOCAL_PROGRESS") != "1" and not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=sys.stderr, leave=False, dynamic_ncols=True)
