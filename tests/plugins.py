"""Test-only plugin modules (a crop kind or text kind with the method that uses it): imported for
one test, then every registration they made is taken back, so no other test sees them."""

import importlib
import sys
from contextlib import contextmanager


@contextmanager
def plugin(module_name: str):
    import glocal.methods  # noqa: F401  (every built-in method and kind registered before the snapshot)
    from glocal.kinds import CROP_KINDS
    from glocal.registry import METHODS
    from glocal.text_kinds import TEXT_KINDS

    registries = (CROP_KINDS, METHODS, TEXT_KINDS)
    before = [set(r) for r in registries]
    module = importlib.import_module(module_name)
    try:
        yield module
    finally:
        for registry, names in zip(registries, before):
            for name in set(registry) - names:
                del registry[name]
        sys.modules.pop(module_name, None)
