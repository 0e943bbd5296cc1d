"""A custom policy: anything with `reset(obs, info)` and `act(obs, info) -> str` can play.

Run it directly:            python examples/custom_policy.py
or through the CLI:         curbench run --agent examples.custom_policy:ShortAnswerPolicy
(the module must be importable: run the CLI from the repository root with PYTHONPATH=.).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

import curbench_env  # noqa: F401  (registers the env ids)
from curbench_env.runner import run_episode

SELECT = r"""python3 - <<'EOF'
import json, os
pool = json.load(open(os.environ["POOL"] + "/pool.json"))
def short(r):  # keep image examples whose answers are a few words: the benchmarks' format
    return "image" in r and all(len(t["value"].split()) <= 3 for t in r["conversations"][1::2])
ids = [r["id"] for r in pool if short(r)][:BUDGET]
open("short.txt", "w").write("\n".join(ids))
print(len(ids), "ids")
EOF"""


class ShortAnswerPolicy:
    """Looks at the pool once, submits short-answer examples, then stops."""

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.budget = 1000
        self.plan = ["pool-stats", SELECT.replace("BUDGET", str(self.budget)),
                     "submit short.txt --note 'short answers only'", "done"]

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        return self.plan.pop(0) if self.plan else "done"


if __name__ == "__main__":
    env = gym.make("Curation-MiniVQA-v0", iteration_budget=3)
    summary = run_episode(env, ShortAnswerPolicy(), seed=0)
    print(summary)
    env.close()
