"""DataComp-style filters for an image-caption pool ($POOL/metadata.jsonl): keep the top
fraction by CLIP score (DataComp's CLIP-score baseline), a random fraction, or a text-based
filter (drop file names, spam and generic captions, then exact duplicates). Writes uids."""
import json
import os
import re

import numpy as np
from _common import POOL, args, write

a = args({"--by": {"choices": ["clip_score", "random", "text", "none"], "default": "clip_score"},
          "--fraction": {"type": float, "default": 0.3}})
rows = [json.loads(line) for line in open(os.path.join(POOL, "metadata.jsonl"))]
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
