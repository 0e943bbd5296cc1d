"""EL2N-style top-loss selection with a p95 loss noise filter: per question type of each source
(losses live on different scales per type), rank by the early-training loss (high loss = the
model still has to learn it), drop everything above the type's p95 of loss (likely mislabeled or
broken), keep the top of the rest, balanced across types. `--noise-pct 100`: plain top-loss, no
noise filter."""
import numpy as np
from _common import args, balanced, load_pool, signal, type_of, write

a = args({"--noise-pct": {"type": float, "default": 95.0}, "--no-balance": {"action": "store_true"}})
pool = [r for r in load_pool() if "image" in r]
ids_sig, loss = signal("loss.npy")
row = {i: k for k, i in enumerate(ids_sig)}
lv = np.array([loss[row[r["id"]]] for r in pool])
groups = {r["id"]: type_of(r) for r in pool}
keep = []
for g in sorted(set(groups.values())):
    members = [k for k, r in enumerate(pool) if groups[r["id"]] == g]
    cut = np.percentile(lv[members], a.noise_pct)
    keep += [k for k in members if lv[k] <= cut]
ranked = [pool[k]["id"] for k in sorted(keep, key=lambda k: -lv[k])]
if a.noise_pct < 100:
    print(f"{len(pool) - len(keep)} examples above the p{a.noise_pct:g} loss filtered as noise")
write(ranked[: a.budget] if a.no_balance else balanced(groups, ranked, a.budget), a.out)
