"""Policies that step the env: scripted baselines, `LiteLLMPolicy`, a person at the keyboard."""

from __future__ import annotations

from curbench_env.agents.base import Policy
from curbench_env.agents.scripted import POLICIES, CuratorAgent, ScriptedAgent, SinglePolicyAgent

__all__ = ["CuratorAgent", "POLICIES", "Policy", "ScriptedAgent", "SinglePolicyAgent"]
