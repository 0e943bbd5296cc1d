"""Policies that step the env: scripted baselines, `LiteLLMPolicy`, a person at the keyboard."""

from __future__ import annotations

import importlib
from typing import Any

from curbench_env.agents.base import Policy
from curbench_env.agents.scripted import AGENTS, POLICIES, CuratorAgent, ScriptedAgent, SinglePolicyAgent

from curbench_env.errors import CurbenchError

__all__ = ["CuratorAgent", "POLICIES", "Policy", "ScriptedAgent", "SinglePolicyAgent", "load_policy"]


def load_policy(spec: str, *, seed: int = 0) -> Any:
    """A policy from a spec: ``curator`` / ``scripted:NAME`` / ``litellm:MODEL`` / ``module:Class``."""
    if spec in AGENTS:
        return AGENTS[spec](seed=seed)
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        if rest in AGENTS:
            return AGENTS[rest](seed=seed)
        if rest in POLICIES:
            return SinglePolicyAgent(rest, seed=seed)
        raise CurbenchError(f"unknown scripted agent {rest!r}; choose {', '.join([*AGENTS, *POLICIES])}")
    if kind == "litellm":
        from curbench_env.agents.llm import LiteLLMPolicy

        return LiteLLMPolicy(model=rest)
    if ":" in spec:
        module, _, cls = spec.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)()
        except (ImportError, AttributeError) as exc:
            raise CurbenchError(f"cannot load policy {spec!r}: {exc}") from None
    raise CurbenchError(f"unknown agent {spec!r}: use curator, scripted:NAME, litellm:MODEL or module:Class")

