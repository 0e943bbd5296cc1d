"""Concurrent rollouts: many episodes at once, none waiting for another's slow submission.

Lock-step vector envs wait for the slowest env, so one 40-s submission stalls the whole batch. Here
each episode runs its own loop in a thread (shell commands and agent calls overlap freely; training
releases the GIL) and submissions queue for the machine's scoring slots; identical subsets (a GRPO
group's) are trained once and read from the content-hash cache by the others.

```python
from curbench_env.integrations.rollouts import run_rollouts
results = run_rollouts(lambda: make_env("Curation-MiniVQA-v0"), lambda i: load_policy("curator", seed=i),
                       seeds=[0] * 8, concurrency=4)   # 8 episodes, training seed 0, 4 at a time
```
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym


@dataclass
class RolloutResult:
    """One finished (or failed) episode."""

    seed: int
    episode_return: float = 0.0
    base_score: float | None = None
    best_score: float | None = None
    iterations: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    run_dir: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_rollouts(env_factory: Callable[[], gym.Env], policy_factory: Callable[[int], Any], seeds: Sequence[int], *,
                 concurrency: int = 4, on_done: Callable[[RolloutResult], None] | None = None) -> list[RolloutResult]:
    """Play one episode per entry of ``seeds`` (its episode seed: the training seed), ``concurrency`` at
    a time; ``policy_factory(i)`` builds rollout ``i``'s policy. Results come in the order of ``seeds``.

    A rollout that raises is returned with ``error`` set (its run directory keeps what it did); the
    others go on.
    """
    from curbench_env.runner import run_episode

    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    done_lock = threading.Lock()

    def one(index: int) -> RolloutResult:
        seed = int(seeds[index])
        t0 = time.monotonic()
        env = None
        try:
            env = env_factory()
            summary = run_episode(env, policy_factory(index), seed=seed, progress=False)
            result = RolloutResult(seed=seed, episode_return=float(summary["return"]),
                                   base_score=summary["base_score"], best_score=summary["best_score"],
                                   iterations=int(summary["iterations"] or 0), steps=int(summary["steps"]),
                                   elapsed_s=round(time.monotonic() - t0, 2), run_dir=summary["run_dir"])
        except Exception as exc:  # one failed rollout must not take the batch down
            root = getattr(env.unwrapped, "run_dir", None) if env is not None else None
            result = RolloutResult(seed=seed, elapsed_s=round(time.monotonic() - t0, 2),
                                   run_dir=str(root) if root else None,
                                   error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        finally:
            if env is not None:
                env.close()
        if on_done is not None:
            with done_lock:
                on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="curbench-rollout") as pool:
        return list(pool.map(one, range(len(seeds))))
