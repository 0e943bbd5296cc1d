"""DataComp-style filters for an image-caption pool ($POOL/metadata.jsonl, or DataComp's own
$POOL/metadata/*.parquet with its clip_b32_similarity_score): keep the top fraction by CLIP
score (DataComp's CLIP-score baseline), a random fraction, or a text-based filter (drop file
names, spam and generic captions, then exact duplicates). Writes uids."""
import glob
import json
import os
import re

import numpy as np
from _common import POOL, args, write

a = args({"--by": {"choices": ["clip_score", "random", "text", "none"], "default": "clip_score"},
          "--fraction": {"type": float, "default": 0.3}})
if os.path.exists(os.path.join(POOL, "metadata.jsonl")):
    rows = [json.loads(line) for line in open(os.path.join(POOL, "metadata.jsonl"))]
else:  # DataComp's download layout
    import pyarrow.parquet as pq

    cols = ["uid", "text", "clip_b32_similarity_score"]
    rows = [dict(r, clip_score=r["clip_b32_similarity_score"])
            for f in sorted(glob.glob(os.path.join(POOL, "metadata", "*.parquet")))
            for r in pq.read_table(f, columns=cols).to_pylist()]
uids = [r["uid"] for r in rows]
n = max(1, int(round(a.fraction * len(rows))))
if a.by == "clip_score":
    order = np.argsort([-r["clip_score"] for r in rows], kind="stable")
    keep = [uids[k] for k in order[:n]]
elif a.by == "random":
    keep = list(np.random.default_rng(a.seed).choice(uids, n, replace=False))
elif a.by == "text":
    bad = re.compile(r"(img_\d+|\.jpe?g$|buy|price|click|sale|free|download|wallpaper|follow us|may contain)", re.I)
    seen, keep = set(), []
    for r in rows:
        t = r["text"].strip().lower()
        if len(t.split()) < 3 or bad.search(t) or t in seen:
            continue
        seen.add(t)
        keep.append(r["uid"])
else:
    keep = uids
write(keep, a.out)
