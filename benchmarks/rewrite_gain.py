"""The rewriting setting's check: on Curation-MiniVQA-Rewrite-v0, a selection with its loss-noisy
examples rewritten by the simulated MLLM (`rewrite` tool) against the same selection without
rewriting, over training seeds; the full-pool score is the ceiling. Each seed is one episode of the
scripted RewriteNoisyAgent (iteration 1: the selection; iteration 2: the same ids, rewritten).
Run by hand: `python benchmarks/rewrite_gain.py [--preset default] [--seeds 3] [--policy top_loss]
[--full]` (about 2 submissions of ~40 s per seed on 2 cores; --full adds a ~950 s full-pool fine-tune per seed)."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--policy", default="top_loss")
    ap.add_argument("--extra", default="", help="extra arguments of the selection script")
    ap.add_argument("--noise-pct", type=float, default=70.0)
    ap.add_argument("--full", action="store_true", help="also fine-tune on the full pool (slow)")
    ap.add_argument("--noisy-only", action="store_true", help="rewrite only the loss-noisy examples (no --free-form)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import gymnasium as gym
    from curbench_env.agents.scripted import RewriteNoisyAgent

    import curbench_env  # noqa: F401  (registers the ids)
    from curbench_env.registry import task_kwargs_for
    from curbench_env.runner import run_episode
    from curbench_env.scorer import Scorer
    from curbench_env.submission import Selection
    from curbench_env.trajectory import RunDirectory

    env_id = "Curation-MiniVQA-Rewrite-v0"
    rows: dict[str, list[float]] = {"selection": [], "selection + rewrite": [], "full pool": []}
    rewritten: list[int] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="curbench-rewrite-") as tmp:
        env = gym.make(env_id, task_kwargs=task_kwargs_for(env_id, {"preset": a.preset}), iteration_budget=3,
                       run_root=Path(tmp), disable_env_checker=True)
        try:
            for seed in range(a.seeds):
                agent = RewriteNoisyAgent(a.policy, seed=seed, extra=a.extra, noise_pct=a.noise_pct,
                                          free_form=not a.noisy_only)
                summary = run_episode(env, agent, seed=seed, progress=False)
                its = RunDirectory.existing(Path(summary["run_dir"])).iterations()
                if len(its) != 2:
                    raise RuntimeError(f"seed {seed}: expected 2 scored iterations, got {len(its)} "
                                       f"(see {summary['run_dir']}/steps.jsonl)")
                rows["selection"].append(its[0]["average"])
                rows["selection + rewrite"].append(its[1]["average"])
                rewritten.append(its[1]["rewrites"])
                print(f"seed {seed}: selection {its[0]['average']:.2f}, with {its[1]['rewrites']} rewritten "
                      f"{its[1]['average']:.2f}  ({time.monotonic() - t0:.0f}s)", flush=True)
                if a.full:
                    task = env.unwrapped.task
                    res = Scorer(task).score(Selection(ids=list(task.pool.ids)), seed, Path(tmp) / f"full-{seed}")
                    rows["full pool"].append(res.average)
        finally:
            env.close()
    wall = time.monotonic() - t0

    def stat(xs: list[float]) -> str:
        return f"{statistics.fmean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}" if xs else "-"

    print(f"\n{env_id} (preset {a.preset}, policy {a.policy} {a.extra}, {a.seeds} seeds, wall {wall:.0f}s)")
    print("| condition | average (mean ± std) | runs |\n|---|---:|---|")
    for name, xs in rows.items():
        if xs:
            print(f"| {name} | {stat(xs)} | {', '.join(f'{x:.2f}' for x in xs)} |")
    sel, rw = rows["selection"], rows["selection + rewrite"]
    diffs = [b - c for b, c in zip(rw, sel, strict=True)]
    sd = max(statistics.stdev(sel), statistics.stdev(rw)) if len(sel) > 1 else 0.0
    gap = statistics.fmean(rw) - statistics.fmean(sel)
    paired_sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    print(f"rewritten per submission: {rewritten}")
    print(f"gap of the means {gap:.2f} vs 2σ of the conditions {2 * sd:.2f}: {'PASS' if gap > 2 * sd else 'FAIL'}")
    print(f"paired gain (same ids, same training seed) {stat(diffs)}: mean vs 2σ of the gains {2 * paired_sd:.2f}: "
          f"{'PASS' if statistics.fmean(diffs) > 2 * paired_sd else 'FAIL'}")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "rewritten": rewritten, "wall_s": wall, "preset": a.preset,
                                      "policy": a.policy, "extra": a.extra}, indent=2))


if __name__ == "__main__":
    main()
