"""Merge a selection (one id a line) with rewritten records (JSONL from `rewrite`) into a submission:
the rewritten record where there is one, {"id": ...} otherwise."""
import argparse
import json

p = argparse.ArgumentParser()
p.add_argument("--picks", required=True)
p.add_argument("--rewrites", required=True)
p.add_argument("--out", required=True)
a = p.parse_args()
rewritten = {}
for line in open(a.rewrites):
    if line.strip():
        r = json.loads(line)
        rewritten[r["id"]] = r
picks = [line.strip() for line in open(a.picks) if line.strip()]
with open(a.out, "w") as fh:
    for i in picks:
        fh.write(json.dumps(rewritten.get(i, {"id": i})) + "\n")
print(f"{len(picks)} examples, {sum(i in rewritten for i in picks)} of them rewritten -> {a.out}")
