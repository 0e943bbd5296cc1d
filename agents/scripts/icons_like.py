"""ICONS-like proxy (influence consensus): treat each response-format group as a target task,
score every example by how close its text and image embeddings are to that task's centroid
(a cheap stand-in for gradient alignment), and keep examples that rank in the top fraction for
the most tasks (majority-vote consensus), ties broken by total score."""
import numpy as np
from _common import args, group_of, load_pool, signal, write

a = args({"--top": {"type": float, "default": 0.2}})
pool = [r for r in load_pool() if "image" in r]
ids_sig, img = signal("image_emb.npy")
_, txt = signal("text_emb.npy")
row = {i: k for k, i in enumerate(ids_sig)}
X = np.stack([np.concatenate([img[row[r["id"]]], txt[row[r["id"]]]]) for r in pool])
X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-8
labels = np.array([group_of(r) for r in pool])
votes = np.zeros(len(pool))
total = np.zeros(len(pool))
for g in sorted(set(labels)):
    c = X[labels == g].mean(0)
    s = X @ (c / (np.linalg.norm(c) + 1e-8))
    votes += s >= np.quantile(s, 1 - a.top)
    total += s
order = np.lexsort((-total, -votes))
write([pool[k]["id"] for k in order[: a.budget]], a.out)
