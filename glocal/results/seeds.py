"""Mean ± std over seeds (#30): one run per seed (``--seeds 1,2,3`` on evaluate / eval, or a sweep
over ``seed``), each method's top-1 summarised across them. A method with no random draw (no
``seed`` in its config: CLIP, CLIP-E, CLIP-D, CuPL) scores the same for every seed, and says so
instead of showing a std of zero. The std is the population std (numpy's ``np.std``, what the
official WCA and BiFTA code print over their draws, and glocal's std over draws)."""

from __future__ import annotations

import dataclasses
import math

SEED_COLUMNS = ["method", "seeds", "top1_pct_mean", "top1_pct_std", "top1_pct_per_seed", "note"]
NO_DRAW = "no random draw: the same for every seed"


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]: at least two distinct integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give integers separated by commas, e.g. --seeds 1,2,3") from None
    if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give two or more distinct seeds, e.g. --seeds 1,2,3")
    return seeds


def has_random_draw(config) -> bool:
    """Whether a method's config draws at random (it has a ``seed``)."""
    return dataclasses.is_dataclass(config) and any(f.name == "seed" for f in dataclasses.fields(config))


def seed_overrides(methods: list[str], configs: dict, seed: int, overrides: dict | None = None) -> dict:
    """The run's overrides with ``seed`` set for every method that draws (``configs``: method -> its config)."""
    out = {m: dict(v) for m, v in (overrides or {}).items()}
    for method in methods:
        if has_random_draw(configs[method]):
            out.setdefault(method, {})["seed"] = seed
    return out


def summarise(seeds: list[int], top1_pct: list[dict[str, float]], random: dict[str, bool]) -> list[tuple]:
    """``top1_pct[i]``: method -> top-1 (per cent) of the run with ``seeds[i]`` -> rows of
    ``SEED_COLUMNS``, one per method, in the first run's order."""
    rows = []
    for method in top1_pct[0]:
        values = [run[method] for run in top1_pct]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if random[method]:
            rows.append((method, len(seeds), round(mean, 4), round(std, 4), ",".join(f"{v:g}" for v in values), None))
        else:
            rows.append((method, len(seeds), round(mean, 4), None, ",".join(f"{v:g}" for v in values), NO_DRAW))
    return rows


def seed_groups(accuracy: list[tuple], params: dict) -> list[tuple]:
    """``accuracy``: (run_id, dataset, backbone, method, images, top1 fraction) rows; ``params``: run
    id -> its stored request. -> one row per (dataset, backbone, method, setting but the seed)
    stored with two or more seeds, as `glocal runs` shows them: run_id "seeds:<n runs>", setting
    "seed=1,2,3, ...", images, the mean top-1 (%), three empty metrics, its population std."""
    from glocal.results.labels import method_setting

    groups: dict[tuple, list[tuple]] = {}
    for run_id, dataset, backbone, method, images, top1 in accuracy:
        setting = method_setting(params.get(run_id, {}), method)
        if "seed" in setting:
            rest = tuple(sorted((k, v) for k, v in setting.items() if k != "seed"))
            groups.setdefault((dataset, backbone, method, rest), []).append((setting["seed"], images, 100 * top1))
    rows = []
    for (dataset, backbone, method, rest), members in groups.items():
        seeds = sorted({seed for seed, _, _ in members}, key=str)
        if len(seeds) < 2 or len(seeds) != len(members):
            continue  # one seed, or a seed stored twice (other text or data): not a seed study
        (_, n, mean, std, _, _), = summarise(seeds, [{method: top1} for _, _, top1 in members], {method: True})
        label = ", ".join([f"seed={','.join(str(s) for s in seeds)}", *(f"{k}={v}" for k, v in rest)])
        rows.append((f"seeds:{n}", dataset, backbone, method, label, members[0][1], mean, None, None, None, std))
    return rows
