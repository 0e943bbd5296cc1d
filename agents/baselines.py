"""The fidelity table: base < random < best scripted policy < full pool, over seeds."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from curbench_env.agents.scripted import BASELINE_SETS, POLICIES, SinglePolicyAgent

from curbench_env.runner import run_episode
from curbench_env.scorer import Scorer
from curbench_env.submission import Selection
from curbench_env.trajectory import RunDirectory


def run_baselines(env_id: str, *, seeds: int = 3, backend: str = "auto", task_kwargs: dict[str, Any] | None = None,
                  include_full: bool = True, console: Any = None, policies: list[str] | None = None,
                  world_seeds: list[int] | None = None, full_seeds: int | None = None) -> dict[str, Any]:
    """Score base, every scripted policy and the full pool for ``seeds`` training seeds, on each of
    ``world_seeds`` (the task's ``seed`` argument; None: the task's own world only).

    The result's ``rows`` hold one entry per (world seed, policy): ``world_seed``, ``policy``, ``mean``,
    ``std`` (over training seeds), ``scores`` (per-benchmark means) and the ``runs``; ``worlds`` holds
    each world's table with its fidelity checks, ``kendall_tau`` the agreement of the policies'
    ranking between worlds, ``spread`` each benchmark's range over the scripted subset policies.
    """
    unknown = [p for p in policies or [] if p not in POLICIES]
    if unknown:  # before any world is built or model trained
        raise ValueError(f"unknown scripted policy {', '.join(map(repr, unknown))}; choose from {', '.join(POLICIES)}")
    t0 = time.monotonic()
    worlds: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    for ws in world_seeds if world_seeds is not None else [None]:
        kwargs = dict(task_kwargs or {})
        if ws is not None:
            kwargs["seed"] = ws
        if console and ws is not None:
            console.print(f"[bold]world seed {ws}[/bold]")
        table, meta = _one_world(env_id, seeds=seeds, backend=backend, task_kwargs=kwargs, include_full=include_full,
                                 console=console, policies=policies, full_seeds=full_seeds)
        key = str(ws if ws is not None else (task_kwargs or {}).get("seed", "default"))
        worlds[key] = {"rows": table, "fidelity": fidelity({"rows": table, "shape": meta["shape"]})}
    rows = [{"world_seed": _world_seed(key), "policy": name, "mean": row["mean"], "std": row["std"],
             "scores": row["benchmarks"], "runs": row["runs"]}
            for key, world in worlds.items() for name, row in world["rows"].items()]
    return {"env": env_id, "seeds": seeds, "world_seeds": [_world_seed(k) for k in worlds], **meta, "rows": rows,
            "worlds": worlds, "kendall_tau": ranking_agreement(worlds), "spread": benchmark_spread(worlds),
            "wall_s": round(time.monotonic() - t0, 1)}


def _world_seed(key: str) -> int | str:
    return int(key) if key.lstrip("-").isdigit() else key


def _one_world(env_id: str, *, seeds: int, backend: str, task_kwargs: dict[str, Any], include_full: bool, console: Any,
               policies: list[str] | None, full_seeds: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
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
            names = policies or list(baseline_set.policies)
            scorer = Scorer(task)
            for seed in range(seeds):
                base = scorer.base(seed)
                rows.setdefault("base", []).append({"seed": seed, "average": base.average, "scores": base.scores})
                for name in names:
                    if console:
                        console.print(f"seed {seed}: {name} ...")
                    summary = run_episode(env, SinglePolicyAgent(name, seed=seed), seed=seed, progress=False)
                    scored = RunDirectory.existing(Path(summary["run_dir"])).iterations()
                    if not scored:
                        raise RuntimeError(f"policy {name} produced no scored submission (see {summary['run_dir']})")
                    it = scored[-1]
                    rows.setdefault(name, []).append({"seed": seed, "average": it["average"], "scores": it["scores"]})
                if include_full and seed < (full_seeds if full_seeds is not None else seeds):
                    if console:
                        console.print(f"seed {seed}: full pool ({len(task.pool)} examples) ...")
                    res = scorer.score(Selection(ids=list(task.pool.ids)), seed, Path(tmp) / f"full-{seed}")
                    rows.setdefault("full", []).append({"seed": seed, "average": res.average, "scores": res.scores})
        finally:
            env.close()
    meta = {"budget": task.rules.budget, "pool": len(task.pool), "shape": baseline_set.shape}
    return {k: summarise(v) for k, v in rows.items()}, meta


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two score lists (1: same order, -1: reversed)."""
    conc = disc = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def ranking_agreement(worlds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Kendall's tau of the subset policies' mean scores (random and the scripted ones) between each pair
    of worlds, and its mean."""
    keys = list(worlds)
    if len(keys) < 2:
        return {}
    common = [p for p in worlds[keys[0]]["rows"] if p not in ("base", "full")
              and all(p in worlds[k]["rows"] for k in keys)]
    pairs = {}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            pairs[f"{a}-{b}"] = kendall_tau([worlds[a]["rows"][p]["mean"] for p in common],
                                            [worlds[b]["rows"][p]["mean"] for p in common])
    return {"policies": common, "pairs": pairs, "mean": statistics.fmean(pairs.values())}


def benchmark_spread(worlds: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per world and benchmark: the range (max - min) of the subset policies' mean scores, and the
    full pool's gain over the base model (``<bench>:full-base``)."""
    out: dict[str, dict[str, float]] = {}
    for key, world in worlds.items():
        rows = world["rows"]
        subset = [r for p, r in rows.items() if p not in ("base", "full")]
        spread = {b: max(r["benchmarks"][b] for r in subset) - min(r["benchmarks"][b] for r in subset)
                  for b in rows["base"]["benchmarks"]} if subset else {}
        if "full" in rows:
            spread.update({f"{b}:full-base": rows["full"]["benchmarks"][b] - rows["base"]["benchmarks"][b]
                           for b in rows["base"]["benchmarks"]})
        out[key] = spread
    return out


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
    # A table of some policies only (``--policies``) gets the checks its rows allow.
    scripted = {k: v for k, v in rows.items() if k not in ("base", "full", "random")}
    base, rand, full = rows.get("base"), rows.get("random"), rows.get("full")
    checks: dict[str, Any] = {}
    best = None
    if scripted:
        best_name = max(scripted, key=lambda k: scripted[k]["mean"])
        best = scripted[best_name]
        checks["best_scripted"] = best_name
    if base and rand:
        checks["base < random"] = gap(base, rand)
    if rand and best:
        checks["random < best scripted"] = gap(rand, best)
    if full and best:
        checks["best scripted < full"] = gap(best, full)
        if base:
            span = full["mean"] - base["mean"]
            checks["gain recovered"] = (best["mean"] - base["mean"]) / span if span else float("nan")
    return checks


def markdown_tables(result: dict[str, Any]) -> str:
    """The tables as Markdown (one per world, with the spread row), the checks, and the ranking agreement."""
    out = []
    for key, world in result["worlds"].items():
        rows = world["rows"]
        benches = list(next(iter(rows.values()))["benchmarks"])
        out.append(f"World seed {key}:\n")
        out.append("| policy | average | " + " | ".join(benches) + " |")
        out.append("|---|---:|" + "---:|" * len(benches))
        for name, row in rows.items():
            out.append(f"| {name} | {row['mean']:.2f} ± {row['std']:.2f} | "
                       + " | ".join(f"{row['benchmarks'][b]:.1f}" for b in benches) + " |")
        spread = result["spread"].get(key, {})
        if spread:
            out.append("| *spread of subset policies* | | " + " | ".join(f"{spread.get(b, 0.0):.1f}" for b in benches) + " |")
        checks = ", ".join(f"{k}: {v:.0%}" if isinstance(v, float) else f"{k}: {v}" for k, v in world["fidelity"].items())
        out.append(f"\nChecks: {checks}.\n")
    tau = result.get("kendall_tau") or {}
    if tau:
        out.append(f"Ranking agreement between worlds (Kendall τ over {', '.join(tau['policies'])}): "
                   + ", ".join(f"{k} {v:.2f}" for k, v in tau["pairs"].items()) + ".")
    return "\n".join(out) + "\n"


def print_table(result: dict[str, Any], console: Any) -> None:
    """A rich table per world plus its fidelity checks; then the ranking agreement between worlds."""
    from rich.markup import escape
    from rich.table import Table

    for key, world in result["worlds"].items():
        rows = world["rows"]
        benches = list(next(iter(rows.values()))["benchmarks"])
        table = Table(title=f"{result['env']} (world seed {key}): budget {result['budget']} of {result['pool']}, "
                            f"{result['seeds']} training seeds")
        table.add_column("policy")
        table.add_column("average", justify="right")
        for b in benches:
            table.add_column(b, justify="right")
        for name, row in rows.items():
            table.add_row(escape(name), f"{row['mean']:.2f} ± {row['std']:.2f}",
                          *[f"{row['benchmarks'][b]:.1f}" for b in benches])
        spread = result["spread"].get(key, {})
        if spread:
            table.add_row("[dim]spread of subset policies[/dim]", "", *[f"{spread.get(b, 0.0):.1f}" for b in benches])
        console.print(table)
        for k, v in world["fidelity"].items():
            console.print(f"  {k}: {v if not isinstance(v, float) else f'{v:.0%}'}")
    tau = result.get("kendall_tau") or {}
    if tau:
        pairs = ", ".join(f"{k} {v:.2f}" for k, v in tau["pairs"].items())
        console.print(f"ranking agreement (Kendall tau over {len(tau['policies'])} policies): mean {tau['mean']:.2f} "
                      f"({pairs})")
    console.print(f"wall time {result['wall_s'] / 60:.1f} min")
