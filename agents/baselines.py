"""The fidelity table: base < random < best scripted policy < full pool, over seeds."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from curbench_env.agents.scripted import BASELINE_SETS, SinglePolicyAgent

from curbench_env.runner import run_episode
from curbench_env.scorer import Scorer
from curbench_env.submission import Selection
from curbench_env.trajectory import RunDirectory


def run_baselines(env_id: str, *, seeds: int = 3, backend: str = "auto", task_kwargs: dict[str, Any] | None = None,
                  include_full: bool = True, console: Any = None, policies: list[str] | None = None) -> dict[str, Any]:
    """Score base, every scripted policy and the full pool for ``seeds`` training seeds."""
    import gymnasium as gym

    import curbench_env  # noqa: F401  (registers the ids)
    from curbench_env.registry import task_kwargs_for

    rows: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="curbench-baselines-") as tmp:
        env = gym.make(env_id, backend=backend, iteration_budget=1, run_root=Path(tmp),
                       task_kwargs=task_kwargs_for(env_id, task_kwargs), disable_env_checker=True)
        try:
            task = env.unwrapped.task
            baseline_set = BASELINE_SETS[task.pool_kind]
            policies = policies or list(baseline_set.policies)
            scorer = Scorer(task)
            for seed in range(seeds):
                base = scorer.base(seed)
                rows.setdefault("base", []).append({"seed": seed, "average": base.average, "scores": base.scores})
                for name in policies:
                    if console:
                        console.print(f"seed {seed}: {name} ...")
                    summary = run_episode(env, SinglePolicyAgent(name, seed=seed), seed=seed, progress=False)
                    scored = RunDirectory.existing(Path(summary["run_dir"])).iterations()
                    if not scored:
                        raise RuntimeError(f"policy {name} produced no scored submission (see {summary['run_dir']})")
                    it = scored[-1]
                    rows.setdefault(name, []).append({"seed": seed, "average": it["average"], "scores": it["scores"]})
                if include_full:
                    if console:
                        console.print(f"seed {seed}: full pool ({len(task.pool)} examples) ...")
                    res = scorer.score(Selection(ids=list(task.pool.ids)), seed, Path(tmp) / f"full-{seed}")
                    rows.setdefault("full", []).append({"seed": seed, "average": res.average, "scores": res.scores})
        finally:
            env.close()
    return {"env": env_id, "seeds": seeds, "budget": task.rules.budget, "pool": len(task.pool),
            "shape": baseline_set.shape, "rows": {k: summarise(v) for k, v in rows.items()}}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std of the average and of each benchmark over seeds."""
    avgs = [r["average"] for r in runs]
    benches = list(runs[0]["scores"])
    return {
        "mean": statistics.fmean(avgs), "std": statistics.stdev(avgs) if len(avgs) > 1 else 0.0, "runs": runs,
        "benchmarks": {b: statistics.fmean(r["scores"][b] for r in runs) for b in benches},
    }


def fidelity(result: dict[str, Any]) -> dict[str, Any]:
    """The paper's shape checks: base < random < best scripted < full, gaps > 2 std, gain recovered."""
    rows = result["rows"]

    def gap(a: dict, b: dict) -> bool:
        return b["mean"] - a["mean"] > 2 * max(a["std"], b["std"])

    if result.get("shape") == "filtering":  # DataComp's shape: filtering beats no filtering at a fixed compute
        checks: dict[str, Any] = {"best_scripted": max((k for k in rows if k not in ("base", "full")),
                                                        key=lambda k: rows[k]["mean"])}
        if "full" in rows:
            checks["base < no filtering"] = gap(rows["base"], rows["full"])
            checks["no filtering < CLIP score top 30%"] = gap(rows["full"], rows["clip_score30"])
        if "random30" in rows:
            checks["random 30% < CLIP score top 30%"] = gap(rows["random30"], rows["clip_score30"])
        return checks
    scripted = {k: v for k, v in rows.items() if k not in ("base", "full", "random")}
    best_name = max(scripted, key=lambda k: scripted[k]["mean"])
    best, rand, base = scripted[best_name], rows["random"], rows["base"]
    full = rows.get("full")
    checks = {"best_scripted": best_name}
    checks["base < random"] = gap(base, rand)
    checks["random < best scripted"] = gap(rand, best)
    if full:
        checks["best scripted < full"] = gap(best, full)
        span = full["mean"] - base["mean"]
        checks["gain recovered"] = (best["mean"] - base["mean"]) / span if span else float("nan")
    return checks


def print_table(result: dict[str, Any], console: Any) -> None:
    """A rich table of the result plus the fidelity checks."""
    from rich.table import Table

    rows = result["rows"]
    benches = list(next(iter(rows.values()))["benchmarks"])
    table = Table(title=f"{result['env']}: budget {result['budget']} of {result['pool']}, {result['seeds']} seeds")
    table.add_column("policy")
    table.add_column("average", justify="right")
    for b in benches:
        table.add_column(b[:9], justify="right")
    for name, row in rows.items():
        table.add_row(name, f"{row['mean']:.2f} ± {row['std']:.2f}", *[f"{row['benchmarks'][b]:.1f}" for b in benches])
    console.print(table)
    for k, v in fidelity(result).items():
        console.print(f"  {k}: {v if not isinstance(v, float) else f'{v:.0%}'}")
