"""What a model argument stands for, as a part of content keys.

A stored artifact is reused only when the inputs that made it are the same, and a model
argument is a name, not its content: a directory rebuilt in place with other weights, or a hub
id whose weights moved, would otherwise reuse features of another model. A local directory is
keyed by the bytes of its files (weights, configs, tokenizer; names relative to the directory,
so a moved or copied model keeps its key), hashed once per process per (size, mtime) of each
file: ~1 s per GB. A hub id is keyed by the commit of its cached snapshot, or, on a connected
machine without one, by the hub's current commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

CONTENT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".json", ".txt", ".model")
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes, remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def model_identity(model: str | None) -> str | None:
    """'dir:<hash of the directory's content files>' | 'hub:<id>@<commit>' | None."""
    if model is None:
        return None
    path = Path(model)
    if path.is_dir():
        digest = hashlib.blake2b(digest_size=16)
        for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in CONTENT_SUFFIXES):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(file_digest(file).encode())
        return f"dir:{digest.hexdigest()}"
    return f"hub:{model}@{_hub_commit(model) or 'unresolved'}"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")


@lru_cache(maxsize=16)
def _hub_commit(model: str) -> str | None:
    """The commit a hub id resolves to (looked up once per process: checked, then keyed)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True)).name
    except Exception:  # noqa: BLE001 -- not cached: ask the hub when we may
        pass
    if _offline():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(model).sha
    except Exception:  # noqa: BLE001 -- unreachable hub: the id alone
        return None


def check_models(*models: str | None) -> None:
    """Every model resolvable before any compute: a directory with a readable config.json, or a
    hub id that is in the local cache (offline) or on the hub. A typo fails here, not after
    minutes of text embedding."""
    for model in models:
        if model is None:
            continue
        path = Path(model).expanduser()
        if path.is_dir():
            config = path / "config.json"
            if not config.is_file():
                raise FileNotFoundError(f"{model}: a model directory needs config.json (write it with save_pretrained)")
            try:
                json.loads(config.read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{config}: not valid JSON ({exc}); re-save the model") from None
            continue
        if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise FileNotFoundError(f"{model}: no such model directory")
        if _hub_commit(model) is None:
            raise FileNotFoundError(f"{model}: not a directory, and not a model in the local Hugging Face cache"
                                    + (" (HF_HUB_OFFLINE is set: nothing can be downloaded)" if _offline() else " nor on the hub"))
