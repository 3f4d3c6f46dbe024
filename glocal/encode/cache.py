"""Per-process model caches: a worker loads each model once and reuses it across shards."""

from __future__ import annotations

import copy
import dataclasses
import os
import socket
from contextlib import contextmanager
from functools import lru_cache

from glocal.encode.attention import ATTENTION_SOURCES, load_attention_source
from glocal.backbones import load_backbone
from glocal.backbones.identity import model_identity


def compute_device() -> str:
    """Where this process runs models: $GLOCAL_DEVICE; else, on a Dask worker of a machine with
    GPUs, cuda:<worker index mod GPU count> (one worker per GPU); else cuda if present; else cpu."""
    import torch

    if os.environ.get("GLOCAL_DEVICE"):
        return os.environ["GLOCAL_DEVICE"]
    if not torch.cuda.is_available():
        return "cpu"
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except (ImportError, ValueError):
        return "cuda"
    return f"cuda:{int(name) % torch.cuda.device_count()}" if name.isdigit() else "cuda"


def _threads() -> None:
    # Dask starts worker processes with one intra-op thread whatever OMP_NUM_THREADS says; the
    # task runner gives each worker its share of the cores in GLOCAL_TORCH_THREADS
    if os.environ.get("GLOCAL_TORCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["GLOCAL_TORCH_THREADS"]))


def backbone(model: str, crop_rounding: str = "floor"):
    """The loaded model, reused while its content is the same (a directory rebuilt in place with
    other weights is loaded again, not served from the cache); with a centre-crop rounding other
    than its processor's, a view of it that shares the weights."""
    loaded = _backbone(model, model_identity(model))
    if crop_rounding == loaded.spec.crop_rounding:
        return loaded
    view = copy.copy(loaded)
    view.spec = dataclasses.replace(loaded.spec, crop_rounding=crop_rounding)
    return view


@contextmanager
def _reading(model: str | None):
    """A model whose files cannot be read (a truncated ``model.safetensors``, a corrupt config)
    fails as one ``OSError`` naming the model and the remedy, not the reader's bare message."""
    try:
        yield
    except (ValueError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 -- safetensors, torch and JSON readers raise their own types
        raise OSError(f"{model}: the model's files cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                      "download or build it again") from exc


@lru_cache(maxsize=4)
def _backbone(model: str, identity: str):
    _threads()
    with _reading(model):
        return load_backbone(model, device=compute_device())


def attention_source(kind: str, model: str | None, backbone_model: str, crop_rounding: str = "floor"):
    return _attention_source(kind, model, backbone_model, crop_rounding,
                             model_identity(model) if kind in ATTENTION_SOURCES and ATTENTION_SOURCES[kind].uses_model else None)


@lru_cache(maxsize=4)
def _attention_source(kind: str, model: str | None, backbone_model: str, crop_rounding: str, identity: str | None):
    _threads()
    with _reading(model):
        return load_attention_source(kind, model=model, backbone=lambda: backbone(backbone_model, crop_rounding), device=compute_device())


def worker_tag() -> str:
    """host:pid of this process, and how many models it has loaded so far (a worker that loads
    its models once shows the same counts on every shard after its first)."""
    return f"{socket.gethostname()}:{os.getpid()}:loads={_backbone.cache_info().misses + _attention_source.cache_info().misses}"
