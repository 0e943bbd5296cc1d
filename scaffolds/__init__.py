"""Scaffold content as data: the method library (paper cards), strategy guide and judge rubric."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class MethodCard:
    """One published data-selection method, as an agent can cite and instantiate it."""

    id: str
    family: str
    name: str
    idea: str
    signal: str
    cost: str
    instantiate: str
    reference: str

    def render(self) -> str:
        """The card as the agent reads it."""
        return (f"[{self.id}] {self.name} (family: {self.family}; cost: {self.cost})\n  idea: {self.idea}\n"
                f"  signal: {self.signal}\n  here: {self.instantiate}\n  ref: {self.reference}")


@cache
def method_library() -> dict[str, MethodCard]:
    """All method cards by id."""
    data = json.loads((resources.files("curbench_env.scaffolds") / "methods.json").read_text())
    return {c["id"]: MethodCard(**c) for c in data}


def text(name: str) -> str:
    """A text asset of the scaffolds (``strategy_guide.md``, ``judge_rubric.md``)."""
    return (resources.files("curbench_env.scaffolds") / name).read_text()
