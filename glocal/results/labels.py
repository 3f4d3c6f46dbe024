"""Names for runs that look alike: what differs between them (a preset, a swept field's value,
N), said as ``field=value``, so four ABS rows of a sweep read ``tau=0.5``, ``tau=1``, ... and not as
four run ids."""

from __future__ import annotations

import json


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def method_setting(params: dict, method: str) -> dict[str, str]:
    """What a stored run (``runs.params``) set for ``method``: its preset, its overridden fields, N."""
    setting = {}
    preset = (params.get("presets") or {}).get(method)
    if preset:
        setting["preset"] = preset
    for field, value in ((params.get("overrides") or {}).get(method) or {}).items():
        setting[field] = _shown(value)
    if params.get("n_crops") is not None:
        setting["n_crops"] = _shown(params["n_crops"])
    return setting


def run_setting(params: dict) -> dict[str, str]:
    """What a stored run set for all its methods (fields prefixed by the method when it has several)."""
    methods = params.get("methods") or []
    setting = {}
    for method in methods:
        for field, value in method_setting(params, method).items():
            setting[field if field == "n_crops" or len(methods) == 1 else f"{method}.{field}"] = value
    return setting


def differing(settings: list[dict[str, str]]) -> list[str]:
    """One label per setting: the fields whose value differs among ``settings``, as
    ``field=value`` (``default`` where a setting leaves the field as it is); '' where none differs."""
    fields = sorted({field for setting in settings for field in setting})
    varying = [field for field in fields if len({setting.get(field) for setting in settings}) > 1]
    return [", ".join(f"{field}={setting.get(field, 'default')}" for field in varying) for setting in settings]
