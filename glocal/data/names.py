"""Names a user gives (datasets, ...) are names, never paths: a dataset's name becomes a folder of
the workspace (``artifacts/shards/<name>``), so a name with a separator, ``..`` or a drive could
write, and a re-ingest then delete, files outside the workspace."""

from __future__ import annotations

import re

# a letter or digit first (so never "." / ".." / "-flag"), then letters, digits, ".", "_", "-"; no
# separators, no spaces, at most 100 characters (a folder name on every file system)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 characters: letters, digits, '.', '_', '-', starting with a letter or digit"


def check_name(name: str, what: str = "dataset name") -> str:
    """``name`` unchanged when it is a valid name, else ``ValueError`` naming the rule."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(f"{what} {name!r} is not a name: use {NAME_RULE} (no '/', '\\' or '..'; it names a folder inside the workspace)")
    return name


def name_from(text: str) -> str:
    """A valid name made from ``text`` (a folder's own name): other characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100].replace("..", ".")
    return cleaned if cleaned and cleaned[0].isalnum() else f"d{cleaned}"[:100]
