"""Uniform random subset of the pool (the baseline every policy must beat)."""
import numpy as np
from _common import args, load_pool, write

a = args()
ids = [r["id"] for r in load_pool()]
write(list(np.random.default_rng(a.seed).choice(ids, size=min(a.budget, len(ids)), replace=False)), a.out)
