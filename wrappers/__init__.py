"""Gymnasium wrappers: scaffolds (strategy guide, skill cards, Adapt-Papers, ...) and utilities."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from curbench_env.errors import CurbenchError

#: Scaffold name → wrapper class path (what `curbench run --scaffold NAME` applies).
SCAFFOLDS: dict[str, str] = {
    "strategy-guide": "curbench_env.wrappers.scaffolds:StrategyGuideWrapper",
    "skill-cards": "curbench_env.wrappers.scaffolds:SkillCardsWrapper",
    "adapt-papers": "curbench_env.wrappers.scaffolds:AdaptPapersWrapper",
    "hypothesis-ledger": "curbench_env.wrappers.scaffolds:HypothesisLedgerWrapper",
}


def wrap_scaffold(env: gym.Env, name: str, **kwargs: Any) -> gym.Env:
    """Wrap ``env`` with the named scaffold."""
    if name not in SCAFFOLDS:
        known = ", ".join(SCAFFOLDS) or "none are available yet"
        raise CurbenchError(f"unknown scaffold {name!r} ({known})")
    import importlib

    module, _, cls = SCAFFOLDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(env, **kwargs)


from curbench_env.wrappers.scaffolds import (  # noqa: E402
    AdaptPapersWrapper,
    HypothesisLedgerWrapper,
    IterationBudget,
    SkillCardsWrapper,
    StrategyGuideWrapper,
    parse_declaration,
)

__all__ = ["AdaptPapersWrapper", "HypothesisLedgerWrapper", "IterationBudget", "SCAFFOLDS", "SkillCardsWrapper",
           "StrategyGuideWrapper", "parse_declaration", "wrap_scaffold"]
