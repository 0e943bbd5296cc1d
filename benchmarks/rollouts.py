"""Rollouts per hour with 1, 4 and 8 concurrent episodes (run by hand; prints figures).

Each rollout is a real episode: the scripted baseline scripts are written into the workspace, the
policy looks at the pool, then submits ``--iterations`` random subsets (new subsets every run, so
nothing comes from the result cache) and ends. ``--think-s`` sleeps before each decision, as an LLM
agent's API call would; ``--group G`` makes G rollouts share their subsets (a GRPO group: same
prompt, same seed), which the scorer trains once.

    python benchmarks/rollouts.py --preset tiny --concurrency 1,4,8
    python benchmarks/rollouts.py --concurrency 1,4 --iterations 1      # the default world: ~35 s a submission
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from curbench_env.agents.scripted import ScriptedAgent

from curbench_env.integrations.rollouts import run_rollouts
from curbench_env.runner import make_env


class ThinkingRandomAgent(ScriptedAgent):
    """Random subsets with a pause before each decision (an LLM call's latency)."""

    def __init__(self, seed: int, subset_seed: int, iterations: int, think_s: float) -> None:
        super().__init__(seed=subset_seed)
        self.iterations, self.think_s = iterations, think_s
        self._setup = 0

    def plan(self) -> list[str]:
        setup = self.setup_commands()
        self._setup = len(setup)
        subs = [self.submit_command("random", tag=f"_{k}").replace(f"--seed {self.seed}", f"--seed {self.seed + k}")
                for k in range(self.iterations)]
        return [*setup, "ls -la $POOL", *subs, "done"]

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        if self._setup > 0:
            self._setup -= 1
        else:
            time.sleep(self.think_s)
        return super().act(obs, info)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Curation-MiniVQA-v0")
    ap.add_argument("--preset", default=None, help="task preset (tiny: seconds per submission)")
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--iterations", type=int, default=2, help="submissions per rollout")
    ap.add_argument("--think-s", type=float, default=2.0, help="seconds an agent 'thinks' before each action")
    ap.add_argument("--group", type=int, default=1, help="rollouts that share their subsets (GRPO group size)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args()
    task_args = {"preset": a.preset} if a.preset else {}

    def env_factory() -> Any:
        return make_env(a.env, task_args=task_args, backend=a.backend, iteration_budget=a.iterations)

    env_factory().close()  # the world is built/loaded before the clock starts
    nonce = int(time.time()) % 100_000 * 100  # fresh subsets: no result-cache hits from earlier runs
    print(f"{a.env} {task_args or ''}: {a.iterations} submissions per rollout, think {a.think_s}s per action, "
          f"group {a.group}, scoring slots {os.environ.get('CURBENCH_SCORING_SLOTS', 'default')}, "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for n in [int(x) for x in a.concurrency.split(",")]:
        nonce += 1000
        seeds = [0] * n
        t0 = time.monotonic()
        results = run_rollouts(env_factory, lambda s, n0=nonce: ThinkingRandomAgent(
            s, n0 + (s // a.group) * 10, a.iterations, a.think_s), seeds=seeds, concurrency=n)
        wall = time.monotonic() - t0
        failed = [r for r in results if r.error]
        subs = sum(r.iterations for r in results)
        row = {"concurrency": n, "rollouts": n, "wall_s": round(wall, 1), "rollouts_per_hour": round(n / wall * 3600, 1),
               "submissions_per_hour": round(subs / wall * 3600, 1), "failed": len(failed),
               "mean_rollout_s": round(sum(r.elapsed_s for r in results) / n, 1)}
        rows.append(row)
        print(f"N={n:2d}: {wall:7.1f}s wall, {row['rollouts_per_hour']:7.1f} rollouts/h, "
              f"{row['submissions_per_hour']:7.1f} submissions/h, mean rollout {row['mean_rollout_s']}s, "
              f"{len(failed)} failed", flush=True)
        for r in failed:
            print("   ", r.error.splitlines()[0], file=sys.stderr)
    base = rows[0]["rollouts_per_hour"]
    for row in rows[1:]:
        print(f"N={row['concurrency']} vs N={rows[0]['concurrency']}: {row['rollouts_per_hour'] / base:.2f}x rollouts/h")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
