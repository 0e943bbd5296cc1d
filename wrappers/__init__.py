"""Gymnasium wrappers: scaffolds (strategy guide, skill cards, Adapt-Papers, ...) and utilities."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from curbench_env.errors import CurbenchError

#: Scaffold name → wrapper class path. Filled as scaffolds land.
SCAFFOLDS: dict[str, str] = {}


def wrap_scaffold(env: gym.Env, name: str, **kwargs: Any) -> gym.Env:
    """Wrap ``env`` with the named scaffold."""
    if name not in SCAFFOLDS:
        known = ", ".join(SCAFFOLDS) or "none are available yet"
        raise CurbenchError(f"unknown scaffold {name!r} ({known})")
    import importlib

    module, _, cls = SCAFFOLDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(env, **kwargs)
