"""Run a policy through an episode with live progress; used by the CLI and sweeps."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from curbench_env.errors import CurbenchError


def load_policy(spec: str, *, seed: int = 0) -> Any:
    """A policy from a spec: ``curator`` / ``scripted:NAME`` / ``litellm:MODEL`` / ``module:Class``."""
    from curbench_env.agents.scripted import AGENTS, POLICIES, SinglePolicyAgent

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


def run_episode(env: gym.Env, policy: Any, *, seed: int | None = 0, progress: bool = True,
                console: Any = None, resume: bool = False) -> dict[str, Any]:
    """Play one episode; returns a summary (return, best score, iterations, run dir)."""
    from curbench_env.console import make_console

    console = console or make_console()
    obs, info = env.reset(seed=None if resume else seed)
    policy.reset(obs, info)
    base = env.unwrapped
    budget = base.config.iteration_budget
    total_return = 0.0
    t0 = time.monotonic()
    status = console.status("", spinner="dots") if progress else None
    if status:
        status.start()
    try:
        while True:
            action = policy.act(obs, info)
            if status:
                first = action.strip().splitlines()[0] if action.strip() else ""
                status.update(f"[bold]step {base.steps + 1}[/] · iteration {base.iteration}/{budget} · "
                              f"best {base.best_score:.2f} · $ {first[:70]}")
            obs, reward, terminated, truncated, info = env.step(action)
            total_return += reward
            usage = getattr(policy, "usage", None)
            if usage is not None:
                # The env cannot see the policy: the runner adds its token/cost counts to info and
                # keeps usage.json current, so an interrupted run still has them.
                info["llm_usage"] = dict(usage)
                if base.run_dir:
                    (Path(base.run_dir) / "usage.json").write_text(json.dumps(usage, indent=2))
            sub = info.get("submission")
            if progress and sub:
                if sub["status"] == "scored":
                    took = ("cached result" if sub.get("cached") else
                            f"{sub['timings'].get('train_s', 0) + sub['timings'].get('eval_s', 0):.1f}s")
                    console.print(f"[green]iteration {sub['iteration']}[/] {sub['file']}: average "
                                  f"[bold]{sub['average']:.2f}[/] (reward {reward:+.2f}, {took})  "
                                  f"{sub.get('note', '')[:60]}")
                else:
                    console.print(f"[yellow]submission {sub['status']}[/]: {sub.get('error', '')[:200]}")
            if terminated or truncated:
                break
    finally:
        if status:
            status.stop()
    return {"run_dir": str(base.run_dir), "return": total_return, "base_score": info.get("base_score"),
            "best_score": info.get("best_score"), "iterations": info.get("iteration"), "steps": base.steps,
            "elapsed_s": round(time.monotonic() - t0, 1), "usage": getattr(policy, "usage", None)}
