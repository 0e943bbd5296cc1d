"""Deduplication + diversity: drop exact and near duplicates (same picture embedding and
question), then greedy k-center on embeddings inside each source group (coreset-style)."""
import numpy as np
from _common import args, format_ok, group_of, load_pool, repeat_key, signal, write

a = args({"--near": {"type": float, "default": 0.995}})
pool = load_pool()
ids_sig, img = signal("image_emb.npy")
_, txt = signal("text_emb.npy")
row = {i: k for k, i in enumerate(ids_sig)}
seen, kept = set(), []
for r in pool:
    key = repeat_key(r)
    if key in seen or "image" not in r or not format_ok(r):
        continue
    seen.add(key)
    kept.append(r)
emb = np.concatenate([img, txt], 1)
emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8)
groups = {}
for r in kept:
    groups.setdefault(group_of(r), []).append(row[r["id"]])
quota = max(1, a.budget // len(groups))
rng = np.random.default_rng(a.seed)
chosen = []
for rows in groups.values():
    rows = np.array(rows)
    X = emb[rows]
    pick = [int(rng.integers(len(rows)))]
    dist = 1 - X @ X[pick[0]]
    while len(pick) < min(quota, len(rows)):
        nxt = int(np.argmax(dist))
        if dist[nxt] < 1 - a.near:  # everything left is a near duplicate of something chosen
            break
        pick.append(nxt)
        dist = np.minimum(dist, 1 - X @ X[nxt])
    chosen += [ids_sig[rows[p]] for p in pick]
rest = [ids_sig[row[r["id"]]] for r in kept if ids_sig[row[r["id"]]] not in set(chosen)]
rng.shuffle(rest)
write((chosen + rest)[: a.budget], a.out)
