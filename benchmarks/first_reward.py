"""Time from nothing to the first reward: the main job on an empty $CURBENCH_HOME.

Builds Curation-MiniVQA-v0's world (with the shipped base model where it ships), then plays the
default curator agent and prints when the world was ready, when the first submission was scored,
and when the session ended. Run by hand: python benchmarks/first_reward.py [--iterations N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--home", default=None, help="CURBENCH_HOME to use (default: a new empty folder)")
    a = ap.parse_args()
    home = a.home or tempfile.mkdtemp(prefix="curbench-home-")
    os.environ["CURBENCH_HOME"] = home
    os.environ.setdefault("CURBENCH_RUNS", os.path.join(home, "runs"))
    import gymnasium as gym
    from curbench_env.agents import load_policy

    import curbench_env  # noqa: F401

    t0 = time.monotonic()
    env = gym.make("Curation-MiniVQA-v0", iteration_budget=a.iterations, disable_env_checker=True)
    policy = load_policy("curator")
    obs, info = env.reset(seed=0)
    ready = time.monotonic() - t0
    print(f"world ready and base model scored: {ready:.1f}s (CURBENCH_HOME={home})", flush=True)
    policy.reset(obs, info)
    first = None
    while True:
        obs, reward, term, trunc, info = env.step(policy.act(obs, info))
        sub = info.get("submission") or {}
        if sub.get("status") == "scored":
            took = sub["timings"].get("train_s", 0) + sub["timings"].get("eval_s", 0)
            if first is None:
                first = time.monotonic() - t0
                print(f"first scored iteration: {first:.1f}s", flush=True)
            print(f"  iteration {sub['iteration']}: {sub['average']:.2f} (train+eval {took:.1f}s)", flush=True)
        if term or trunc:
            break
    env.close()
    print(f"session of {info['iteration']} iterations done: {time.monotonic() - t0:.1f}s; best {info['best_score']:.2f}")


if __name__ == "__main__":
    main()
