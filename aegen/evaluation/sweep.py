"""`--sweep KEY=V1,V2,...`: the sampling settings an evaluation runs, one per combination."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

from ..errors import UsageError
from ..settings import SamplingSettings

FIELDS = {"steps": int, "n": int, "seed": int, "batch_size": int, "sampler": str}
"""Sweep keys that set a field of the run; any other key is a sampler option (`schedule`,
`mu`, `schedule.k`, ...), as `-O KEY=VALUE` sets it."""


def parse_sweeps(items: Sequence[str]) -> dict[str, list[str]]:
    """["steps=10,25", "schedule=linear,cosine"] as {"steps": ["10", "25"], ...}."""
    sweeps: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        listed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not listed:
            raise UsageError(f"`sweep` expects KEY=V1,V2,..., got {item!r}", parameters=["sweep"])
        if key in sweeps:
            raise UsageError(f"`sweep` names {key} twice", parameters=["sweep"])
        sweeps[key] = listed
    return sweeps


def _apply(base: SamplingSettings, key: str, value: str) -> SamplingSettings:
    if key in FIELDS:
        try:
            return dataclasses.replace(base, **{key: FIELDS[key](value)})
        except ValueError:
            raise UsageError(f"`sweep` {key}={value!r}: expected a whole number",
                             parameters=["sweep"]) from None
    return dataclasses.replace(base, options={**base.options, key: value})


Setting = tuple[dict[str, str], SamplingSettings]


def combinations(base: SamplingSettings, sweeps: Mapping[str, Sequence[str]]) -> list[Setting]:
    """Every combination of the swept values (the first key varies slowest), each as its
    label ({key: value}) and the settings it runs; `base` alone without sweeps."""
    keys = list(sweeps)
    result = []
    for values in itertools.product(*(sweeps[k] for k in keys)):
        settings = base
        for key, value in zip(keys, values):
            settings = _apply(settings, key, value)
        settings.check()
        result.append((dict(zip(keys, values)), settings))
    return result


def label(setting: Mapping[str, str]) -> str:
    """steps=50 schedule=cosine; "" for the one setting of a run without sweeps."""
    return " ".join(f"{k}={v}" for k, v in setting.items())
