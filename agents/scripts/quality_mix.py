"""Filters stacked inside a balanced mix: drop text-only chat, off-format answers, length
outliers, exact duplicates and broken pictures (image embeddings far from their source's
typical picture), drop the per-source top of base-model loss as label noise (default: above
p70), then fill the budget round-robin over sources, in random order or highest loss first.
With --formats benchmark, only groups whose prompts ask for one of the benchmarks' answer
formats (short answer, option text, yes/no, region description) are kept: the ARDS idea of
format groups, used to spend the budget where the evaluation is."""
import numpy as np
from _common import (
    answer_words,
    args,
    balanced,
    format_ok,
    group_of,
    image_source,
    load_pool,
    repeat_key,
    signal,
    write,
)

a = args({"--noise-pct": {"type": float, "default": 70.0}, "--odd-pct": {"type": float, "default": 97.0},
          "--order": {"choices": ["random", "loss"], "default": "random"},
          "--formats": {"choices": ["all", "benchmark"], "default": "all"}})
BENCHMARK_FORMATS = ("single word or phrase", "with the option from", "yes or no", "short description for this region")
pool = [r for r in load_pool() if "image" in r]
ids_sig, loss = signal("loss.npy")
_, img = signal("image_emb.npy")
row = {i: k for k, i in enumerate(ids_sig)}
lengths = np.array([answer_words(r) for r in pool])
cap = np.percentile(lengths, 95)
seen, kept = set(), []
for r, n in zip(pool, lengths, strict=True):
    key = repeat_key(r)
    if key in seen or not format_ok(r) or n > cap:
        continue
    if a.formats == "benchmark" and not any(f in r["conversations"][0]["value"] for f in BENCHMARK_FORMATS):
        continue
    seen.add(key)
    kept.append(r)
groups = {r["id"]: group_of(r) for r in kept}
# Broken pictures: far from the mean picture embedding of their image source.
E = np.stack([img[row[r["id"]]] for r in kept])
src = np.array([image_source(r) for r in kept])
odd = np.zeros(len(kept), dtype=bool)
for s in sorted(set(src)):
    m = src == s
    d = np.linalg.norm(E[m] - E[m].mean(0), axis=1)
    odd[np.where(m)[0]] = d > np.percentile(d, a.odd_pct)
lv = np.array([loss[row[r["id"]]] for r in kept])
keep = []
for g in sorted(set(groups.values())):
    members = [k for k, r in enumerate(kept) if groups[r["id"]] == g and not odd[k]]
    if not members:
        continue
    cut = np.percentile(lv[members], a.noise_pct)
    keep += [k for k in members if lv[k] <= cut]
if a.order == "loss":
    keep.sort(key=lambda k: -lv[k])
else:
    keep = [keep[k] for k in np.random.default_rng(a.seed).permutation(len(keep))]
ranked = [kept[k]["id"] for k in keep]
print(f"{len(kept)} after format/length/dedup filters, {int(odd.sum())} odd pictures, {len(keep)} after the loss filter")
write(balanced(groups, ranked, a.budget), a.out)
