"""Length / format filter: drop text-only chat, answers that ignore their format prompt and
length outliers (above the p95 answer length), then sample source-balanced."""
import numpy as np
from _common import answer_words, args, balanced, format_ok, group_of, load_pool, write

a = args({"--max-pct": {"type": float, "default": 95.0}})
pool = [r for r in load_pool() if "image" in r]
lengths = np.array([answer_words(r) for r in pool])
cap = np.percentile(lengths, a.max_pct)
kept = [r for r, n in zip(pool, lengths, strict=True) if format_ok(r) and n <= cap]
print(f"kept {len(kept)} of {len(pool)} image examples (answer length cap {cap:.0f} words)")
groups = {r["id"]: group_of(r) for r in kept}
order = [kept[k]["id"] for k in np.random.default_rng(a.seed).permutation(len(kept))]
write(balanced(groups, order, a.budget), a.out)
