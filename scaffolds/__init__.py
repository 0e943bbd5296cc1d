"""Scaffold content as data: the method library (paper cards), strategy guide and judge rubric."""

from __future__ import annotations

import json
import re
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


#: The fields a scaffold declaration may carry in a submission's note.
DECLARATION_FIELDS = ("cite", "instantiate", "adapt", "hypothesis", "predict")
_FIELD_RE = re.compile(
    r"\b(" + "|".join(DECLARATION_FIELDS) + r")\s*[:=]\s*(.*?)(?=\s*(?:[|;\n]\s*)?\b(?:"
    + "|".join(DECLARATION_FIELDS) + r")\s*[:=]|$)", re.I | re.S)


def parse_declaration(note: str) -> dict[str, str]:
    """``cite: el2n | instantiate: ... | adapt: ...`` → {"cite": "el2n", ...} (keys lower-case)."""
    out: dict[str, str] = {}
    for key, value in _FIELD_RE.findall(note or ""):
        out[key.lower()] = value.strip(" |;\n")
    return out
