"""ARDS-like proxy (robust data selection over format groups): group the pool by response-format
instruction (ARDS's "format groups"), then give more of the budget to the groups the base model
finds hardest (highest median loss), a worst-group-robust allocation; random inside each group,
after dropping text-only chat and the per-group p90 of loss as noise."""
import numpy as np
from _common import args, group_of, load_pool, signal, write

a = args({"--temperature": {"type": float, "default": 1.0}})
pool = [r for r in load_pool() if "image" in r]
ids_sig, loss = signal("loss.npy")
row = {i: k for k, i in enumerate(ids_sig)}
groups: dict[str, list[str]] = {}
for r in pool:
    groups.setdefault(group_of(r), []).append(r["id"])
names = sorted(groups)
med = np.array([np.median([loss[row[i]] for i in groups[g]]) for g in names])
weights = np.exp((med - med.max()) / a.temperature)
quota = np.maximum(1, np.round(a.budget * weights / weights.sum())).astype(int)
rng = np.random.default_rng(a.seed)
chosen: list[str] = []
for g, q in zip(names, quota, strict=True):
    lv = np.array([loss[row[i]] for i in groups[g]])
    members = [i for i, v in zip(groups[g], lv, strict=True) if v <= np.percentile(lv, 90)]
    chosen += list(rng.permutation(members)[: int(q)])
rest = [r["id"] for r in pool if r["id"] not in set(chosen)]
chosen += list(rng.permutation(rest)[: max(0, a.budget - len(chosen))])
print("quota per format group:", dict(zip(names, quota.tolist(), strict=True)))
write(chosen[: a.budget], a.out)
