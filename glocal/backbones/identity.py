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

from glocal.backbones.base import refusal

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
    from glocal.backbones.openclip import identity as open_clip_identity, is_open_clip

    if is_open_clip(model) and not Path(model).is_dir():
        return open_clip_identity(model)
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
    return _hub_lookup(model)[0]


def _hub_lookup(model: str) -> tuple[str | None, str | None]:
    """(the commit a hub id resolves to, None) or (None, why not): the local cache first, then
    the hub when we may ask it."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True)).name, None
    except Exception:  # noqa: BLE001 -- not cached: ask the hub when we may
        pass
    if _offline():
        return None, "offline"
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(model).sha, None
    except Exception as exc:  # noqa: BLE001 -- a missing repo, or no answer at all
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403, 404) or type(exc).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
            return None, "missing"
        return None, "unreachable"


# why a hub id cannot be used, and what to do about it
HUB_PROBLEMS = {
    "offline": "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set, so nothing is downloaded: run "
               "`huggingface-cli download {model}` on a connected machine (or unset HF_HUB_OFFLINE), or pass a local model directory",
    "unreachable": "not in the local Hugging Face cache, and the hub could not be reached: check the network (proxy, HF_ENDPOINT), "
                   "or download it where the hub is reachable and pass the local directory",
    "missing": "no such model on the Hugging Face hub (check the id; a private one needs HF_TOKEN), nor a local directory",
}


def check_models(*models: str | None) -> None:
    """Every model resolvable before any compute: a directory with a readable config.json, or a
    hub id that is in the local cache (offline) or on the hub. A typo fails here, not after
    minutes of text embedding."""
    from glocal.backbones.openclip import checkpoint_problem, is_open_clip

    for model in models:
        if model is None:
            continue
        if is_open_clip(model):
            problem = checkpoint_problem(model)
            if problem:
                raise ValueError(f"{model}: {problem}")
            continue
        path = Path(model).expanduser()
        if path.is_dir():
            config = path / "config.json"
            if not config.is_file():
                raise FileNotFoundError(f"{model}: a model directory needs config.json (write it with save_pretrained)")
            try:
                model_type = json.loads(config.read_text()).get("model_type")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{config}: not valid JSON ({exc}); re-save the model") from None
            if refusal(model_type):
                raise ValueError(f"{model}: {refusal(model_type)}")
            continue
        if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise FileNotFoundError(f"{model}: no such model directory")
        commit, problem = _hub_lookup(model)
        if commit is None:
            raise ValueError(f"{model}: {HUB_PROBLEMS[problem].format(model=model)}")
