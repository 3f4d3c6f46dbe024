"""One module per method; importing this package registers them all, so the lookups below see
every method (the registry itself imports no method module: no import loop), and each lookup
first imports the plugins $GLOCAL_PLUGINS names (``glocal.plugins``)."""

from glocal.methods import abs, awt, bifta, clip, clip_d, clip_e, cupl, lgca, mta, waffle, wca, zero  # noqa: F401
from glocal.plugins import load_plugins
from glocal.methods.registry import METHODS, MethodSpec


def get_method(name: str) -> MethodSpec:
    load_plugins()
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}"
        ) from None


def method_names() -> list[str]:
    load_plugins()
    return sorted(METHODS)


def methods_with_parameters() -> list[str]:
    """The methods that take a configuration (presets, overrides, sweeps)."""
    load_plugins()
    return sorted(name for name, spec in METHODS.items() if spec.config_cls is not None)


def validate_methods(names: list[str]) -> list[MethodSpec]:
    """All specs for ``names``, or one error listing every unknown name (before any compute)."""
    load_plugins()
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(
            f"unknown method(s) {unknown}; choose from {', '.join(sorted(METHODS))}"
        )
    return [METHODS[n] for n in names]
