"""Where glocal finds its text data (class lists, templates, description files)."""

from __future__ import annotations

import os
from pathlib import Path

# GLOCAL_TEXT_DATA: a folder laid out like ../shared/data (classnames/, templates/, descriptions/);
# default: the shared folder beside a checkout
SHARED_DATA = Path(os.environ.get("GLOCAL_TEXT_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
