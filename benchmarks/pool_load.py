"""Loading a 665k-record LLaVA-665K pool: wall time and peak memory (goal: <= 10 s, <= 3 GB).

Generates `llava_v1_5_mix665k`-shaped JSON once (665,298 records, the real mix of sources and
text-only rows, repeated COCO ids, answers of realistic length; about 1 GB), then loads it in
a fresh process per repeat and reports the loader's time and the process's peak RSS, next to a
plain `json.load` of the same file as the reference. Run by hand:
`python benchmarks/pool_load.py [--records 665298] [--repeats 3] [--file /tmp/mix665k.json]`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: (image prefix, rows) as in LLaVA-665K; None = text-only (ShareGPT).
MIX = [("coco/train2017", 364_100), ("gqa/images", 72_140), ("ocr_vqa/images", 80_000),
       ("textvqa/train_images", 21_953), ("vg/VG_100K", 86_417), (None, 40_688)]
WORDS = ("the a of on in with is are there what color shape person man woman table car dog cat street sign "
         "image picture left right top bottom small large red blue green yellow white black two three").split()


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    total = sum(k for _, k in MIX)
    bounds = [(p, sum(k for _, k in MIX[: i + 1])) for i, (p, _) in enumerate(MIX)]
    with open(path, "w") as fh:
        fh.write("[")
        for k in range(n):
            u = rng.random() * total
            prefix = next(p for p, upper in bounds if u < upper)
            turns = rng.randint(1, 8) if prefix else rng.randint(1, 6)
            conv = []
            for t in range(turns):
                q = " ".join(rng.choices(WORDS, k=rng.randint(6, 20))) + "?"
                long = prefix is None or prefix.startswith("coco") and rng.random() < 0.4
                a = " ".join(rng.choices(WORDS, k=rng.randint(40, 160) if long else rng.randint(1, 4)))
                conv.append({"from": "human", "value": ("<image>\n" if t == 0 and prefix else "") + q})
                conv.append({"from": "gpt", "value": a})
            id_ = f"{rng.randint(1, 581_000):012d}" if prefix and prefix.startswith("coco") else f"{k:x}_{seed}"
            rec = {"id": id_, **({"image": f"{prefix}/{id_}.jpg"} if prefix else {}), "conversations": conv}
            fh.write(("," if k else "") + json.dumps(rec))
        fh.write("]")


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
if sys.argv[2] == "curbench":
    from curbench_env.envs.llava665k.pool import load_pool
    pool = load_pool(sys.argv[1])
    n = len(pool)
    pool.record(pool.ids[-1])
else:
    n = len(json.load(open(sys.argv[1])))
dt = time.perf_counter() - t0
print(json.dumps({"n": n, "seconds": dt, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def measure(path: Path, how: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=665_298)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--file", type=Path, default=Path("/tmp/curbench_mix665k.json"))
    a = ap.parse_args()
    if not a.file.exists():
        t0 = time.perf_counter()
        generate(a.file, a.records)
        print(f"generated {a.records:,} records in {time.perf_counter() - t0:.0f} s: {a.file} "
              f"({a.file.stat().st_size / 2**30:.2f} GiB)")
    for how in ("curbench", "json.load"):
        runs = [measure(a.file, how) for _ in range(a.repeats)]
        secs = [r["seconds"] for r in runs]
        print(f"{how:9s} {runs[0]['n']:,} records: median {statistics.median(secs):.2f} s "
              f"(runs {', '.join(f'{s:.2f}' for s in secs)}), peak RSS {max(r['peak_gb'] for r in runs):.2f} GiB")


if __name__ == "__main__":
    main()
