"""Source balancing: equal shares of every (image source, answer format) group, random inside."""
import numpy as np
from _common import args, balanced, group_of, load_pool, write

a = args({"--drop-text": {"action": "store_true"}})
pool = load_pool()
if a.drop_text:
    pool = [r for r in pool if "image" in r]
groups = {r["id"]: group_of(r) for r in pool}
order = [pool[k]["id"] for k in np.random.default_rng(a.seed).permutation(len(pool))]
write(balanced(groups, order, a.budget), a.out)
