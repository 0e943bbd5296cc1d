"""Can the MiniVQA model learn each benchmark at all, whatever the selection?

For each of the eight benchmarks: fine-tune the base model with the world's fixed recipe on N clean
examples in that benchmark's own format (fresh pictures from the pool's side of scene space, never a
benchmark scene), then score all eight. That is the best data a curator could pick for one benchmark,
so a benchmark still at chance after it measures the model, not the selection; the fidelity issue asks
that none be. The last row trains on all eight formats at once (N split evenly): the ceiling of a
"benchmark formats" selection of that size. Run by hand (about 4 minutes at N=1,000 on 2 cores):

    python benchmarks/learnability.py [--preset default] [--world-seed 0] [--n 1000] [--seed 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=1000, help="training examples per row (the submission budget's size)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (and the draw of the examples)")
    ap.add_argument("--json", type=Path, help="also write the table here")
    a = ap.parse_args()

    from curbench_env.envs.llava_pipeline import finetune_lora
    from curbench_env.envs.minivqa import model as M
    from curbench_env.envs.minivqa.benchmarks import BENCHMARKS, make_items
    from curbench_env.envs.minivqa.pipeline import torch_threads
    from curbench_env.envs.minivqa.scenes import render
    from curbench_env.envs.minivqa.task import MiniVQATask

    task = MiniVQATask(a.preset, seed=a.world_seed)
    task.prepare()
    p = task.pipeline
    p.load()
    names = [b.name for b in BENCHMARKS]
    chance = {b.name: 100.0 / len(b.answers) if b.answers else 0.0 for b in BENCHMARKS}

    def train_on(benches: list, n: int) -> dict[str, float]:
        rng = np.random.default_rng([a.seed, len(benches), names.index(benches[0].name)])
        items = [it for b in benches for it in make_items(b, n // len(benches), rng, eval_side=False)]
        images = np.stack([render(it.scene, rng) for it in items])
        examples = [M.one_question(p.encoder, it.question, it.answer, k) for k, it in enumerate(items)]
        with torch_threads(p.recipe.threads):
            model = finetune_lora(p.model, examples, M.image_loader(images), p.recipe.lora, seed=a.seed,
                                  pad_id=p.pad_id, log=lambda _msg: None)
            return p.evaluate(model)[0]

    t0 = time.monotonic()
    with torch_threads(p.recipe.threads):
        base = p.evaluate(p.model)[0]
    rows = {"base": base}
    width = max(len(n) for n in names) + 2
    print(f"{task.name} ({a.preset}, world seed {a.world_seed}): fine-tuned on {a.n} clean examples in one "
          "benchmark's format; scores on all eight")
    print(" " * 14 + "".join(n.rjust(width) for n in names))
    print("chance".ljust(14) + "".join(f"{chance[n]:{width}.1f}" for n in names))
    print("base".ljust(14) + "".join(f"{base[n]:{width}.1f}" for n in names))
    for bench in BENCHMARKS:
        rows[bench.name] = scores = train_on([bench], a.n)
        print(f"on {bench.name}".ljust(14) + "".join(
            (f"[{scores[n]:.1f}]" if n == bench.name else f"{scores[n]:.1f}").rjust(width) for n in names), flush=True)
    rows["all eight"] = scores = train_on(list(BENCHMARKS), a.n)
    print("on all eight".ljust(14) + "".join(f"{scores[n]:{width}.1f}" for n in names))

    ceiling = {b.name: rows[b.name][b.name] for b in BENCHMARKS}
    dead = [n for n in names if ceiling[n] - max(chance[n], base[n]) < 5.0]
    print(f"\nlearnable (own-format training at least 5 points above chance and base): "
          f"{', '.join(n for n in names if n not in dead) or 'none'}")
    print(f"not learnable from {a.n} clean examples: {', '.join(dead) or 'none'}   ({time.monotonic() - t0:.0f}s)")
    if a.json:
        a.json.write_text(json.dumps({"env": task.name, "preset": a.preset, "world_seed": a.world_seed, "n": a.n,
                                      "seed": a.seed, "chance": chance, "rows": rows, "ceiling": ceiling,
                                      "not_learnable": dead, "wall_s": round(time.monotonic() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
