"""Time of one MiniVQA submission (train + evaluate) at the default budget, of a cache hit, and of
the full-pool fine-tune as the ratio's reference. Run by hand:
`python benchmarks/submission_time.py [--preset default] [--repeats 3] [--no-full]`."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-full", action="store_true")
    a = ap.parse_args()

    from curbench_env.envs.minivqa.task import MiniVQATask

    from curbench_env.pipeline import ResultCache
    from curbench_env.submission import Selection

    task = MiniVQATask(a.preset)
    task.prepare()
    p = task.pipeline
    ids = list(task.pool.ids)
    budget = task.rules.budget
    times, trains, evals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.repeats):
            sel = Selection(ids=list(np.random.default_rng(k).choice(ids, budget, replace=False)))
            t = time.perf_counter()
            r = p.run(sel, Path(tmp) / f"r{k}", seed=k)
            times.append(time.perf_counter() - t)
            trains.append(r.timings["train_s"])
            evals.append(r.timings["eval_s"])
        cache = ResultCache(Path(tmp) / "cache")
        key = ResultCache.key(sel, p.fingerprint(), 0)
        cache.put(key, r)
        t = time.perf_counter()
        assert cache.get(key) is not None
        hit = time.perf_counter() - t
        med = statistics.median(times)
        other = [t - tr - ev for t, tr, ev in zip(times, trains, evals, strict=True)]
        print(f"{budget}-example submission: median {med:.1f}s over {a.repeats} (each: "
              f"{', '.join(f'{t:.1f}' for t in times)}s): train {statistics.median(trains):.1f}s, "
              f"eval {statistics.median(evals):.1f}s, encoding and loading {statistics.median(other):.1f}s; goal <= 20s")
        print(f"cache hit: {hit * 1000:.2f} ms (goal < 1 s)")
        if not a.no_full:
            t = time.perf_counter()
            p.run(Selection(ids=ids), Path(tmp) / "full", seed=0)
            full = time.perf_counter() - t
            print(f"full pool ({len(ids)} examples): {full:.1f}s; submission/full ratio {med / full:.3f}")


if __name__ == "__main__":
    main()
