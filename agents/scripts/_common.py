"""Helpers shared by the baseline selection scripts (copied into the workspace with them).

Works on any LLaVA-format pool: `$POOL/pool.json`, optional `$POOL/signals/*.npy`.
"""
import argparse
import json
import os
import re

import numpy as np

POOL = os.environ.get("POOL", "/pool")
SHORT = "Answer the question using a single word or phrase."
OPTION = "Answer with the option from the given choices directly."


def args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="picks.txt")
    for name, kw in (extra or {}).items():
        p.add_argument(name, **kw)
    return p.parse_args()


def load_pool():
    return json.load(open(os.path.join(POOL, "pool.json")))


def signal(name):
    path = os.path.join(POOL, "signals", name)
    if not os.path.exists(path):
        return None
    ids = json.load(open(os.path.join(POOL, "signals", "ids.json")))
    return ids, np.load(path)


def image_source(rec):
    """The record's image directory ("coco", "vg", ...), or "text" for a text-only record."""
    return rec["image"].split("/")[0] if "image" in rec else "text"


def repeat_key(rec):
    """What an exact duplicate shares with its original: the picture and the text (case and spacing
    ignored). Not the image folder: short-answer records repeat their text across pictures ("How many
    shapes are there? 3")."""
    return rec.get("image", ""), " ".join(" ".join(t["value"] for t in rec["conversations"]).lower().split())


def _first_prompt(rec):
    """The first prompt's lines, without the image token, case and spacing normalised."""
    first = rec["conversations"][0]["value"].replace("<image>", "").strip()
    return [re.sub(r"\s+", " ", x).strip().lower() for x in first.split("\n")]


def group_of(rec):
    """A source guess: image directory + the format instruction of the first prompt (case and spacing
    ignored, so lightly edited copies land with their originals, not in small groups of their own)."""
    lines = _first_prompt(rec)
    fmt = lines[-1] if len(lines) > 1 and lines[-1].startswith(("answer", "provide", "please")) else ""
    if lines[0].startswith(("provide the bounding box", "provide a short description")):
        fmt = lines[0].split(":")[0]
    return f"{image_source(rec)}|{fmt[:40]}"


def type_of(rec):
    """A finer source guess, for ranking within comparable examples: the group, the first question's
    opening words ("how many", "is there", "what color"...) and whether the record asks one question or
    several (a record's loss averages over its answers, so one-question and multi-question records sit on
    different loss scales)."""
    words = " ".join(re.findall(r"[a-z]+", _first_prompt(rec)[0])[:2])
    return f"{group_of(rec)}|{words}|{'one' if len(rec['conversations']) <= 2 else 'several'}"


def format_ok(rec):
    """False when an answer ignores its prompt's format (verbose where one word was asked)."""
    conv = rec["conversations"]
    for k in range(0, len(conv) - 1, 2):
        q, a = conv[k]["value"], conv[k + 1]["value"].strip()
        if SHORT in q and len(a.split()) > 3:
            return False
        if OPTION in q and a not in re.findall(r"^[A-D]\. (.+)$", q, re.M):
            return False
        if "Please answer yes or no" in q and a.lower() not in ("yes", "no"):
            return False
    return True


def answer_words(rec):
    return sum(len(t["value"].split()) for t in rec["conversations"][1::2])


def balanced(groups, ranked_ids, budget):
    """Fill the budget round-robin over groups, each group in the given rank order."""
    by = {}
    for i in ranked_ids:
        by.setdefault(groups[i], []).append(i)
    out, queues = [], [list(reversed(v)) for v in by.values()]
    while len(out) < budget and any(queues):
        for q in queues:
            if q and len(out) < budget:
                out.append(q.pop())
    return out


def write(ids, path):
    with open(path, "w") as fh:
        fh.write("\n".join(ids) + "\n")
    print(f"wrote {len(ids)} ids to {path}")
