"""Run a policy through an episode with live progress; used by the CLI and sweeps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym


def make_env(env_id: str, *, task_args: dict[str, Any] | None = None, scaffolds: list[str] | tuple[str, ...] = (),
             backend: str = "auto", run_dir: str | Path | None = None, iteration_budget: int | None = None,
             **env_kwargs: Any) -> gym.Env:
    """A registered env with its task arguments (``task_args`` on top of the id's own) and scaffold
    wrappers: the one way the CLI, the servers and the trainer adapters build an episode."""
    from curbench_env.registry import env_entry, task_kwargs_for
    from curbench_env.wrappers import wrap_scaffold

    env_entry(env_id)  # an unknown id is one clear error
    if iteration_budget is not None:
        env_kwargs["iteration_budget"] = iteration_budget
    env = gym.make(env_id, backend=backend, run_dir=run_dir, disable_env_checker=True,
                   task_kwargs=task_kwargs_for(env_id, task_args), **env_kwargs)
    for name in scaffolds:
        env = wrap_scaffold(env, name)
    return env


def resume_env(run_dir: str | Path, *, backend: str | None = None) -> gym.Env:
    """The env of an interrupted run, with every recorded setting and scaffold; ``reset()`` continues it.

    The one resume path: ``curbench resume`` uses it too. ``backend`` overrides the recorded one
    (e.g. to continue a bwrap run on a machine without bubblewrap).
    """
    from curbench_env.config import RunConfig
    from curbench_env.env import CurationEnv
    from curbench_env.trajectory import RunDirectory
    from curbench_env.wrappers import wrap_scaffold

    config = RunConfig.from_dict(RunDirectory.existing(Path(run_dir)).config)
    env: gym.Env = CurationEnv(resume_from=run_dir, backend=backend or "auto")
    for name in config.scaffolds:
        env = wrap_scaffold(env, name)
    return env


def run_episode(env: gym.Env, policy: Any, *, seed: int | None = 0, progress: bool = True,
                console: Any = None, resume: bool = False, agent: str | None = None) -> dict[str, Any]:
    """Play one episode; returns a summary (return, best score, iterations, run dir).

    ``agent`` names the policy in the run directory's config.json.
    """
    from rich.markup import escape

    from curbench_env.console import make_console

    console = console or make_console()
    obs, info = env.reset(seed=None if resume else seed, options={"agent": agent} if agent else None)
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
                status.update(f"[bold]step {base.steps + 1}[/] · iteration {base.state.iteration}/{budget} · "
                              f"best {base.state.best_score:.2f} · $ {escape(first[:70])}")
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
                    console.print(f"[green]iteration {sub['iteration']}[/] {escape(sub['file'])}: average "
                                  f"[bold]{sub['average']:.2f}[/] (reward {reward:+.2f}, {took})  "
                                  f"{escape(sub.get('note', '')[:60])}")
                else:
                    console.print(f"[yellow]submission {sub['status']}[/]: {escape(sub.get('error', '')[:200])}")
            if terminated or truncated:
                break
    finally:
        if status:
            status.stop()
    return {"run_dir": str(base.run_dir), "return": total_return, "base_score": info.get("base_score"),
            "best_score": info.get("best_score"), "iterations": info.get("iteration"), "steps": base.steps,
            "elapsed_s": round(time.monotonic() - t0, 1), "usage": getattr(policy, "usage", None)}
