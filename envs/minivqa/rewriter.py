"""The MiniVQA rewriter: a simulated MLLM that reads the *picture* and re-answers the questions.

Honest to the rewriting setting: it never sees the hidden ground truth. It perceives the 32x32
picture with fixed rules (background colour, per-cell object masks: colour by the nearest palette
colour, size by area, shape by how the mask fills its box and narrows to the top; letters on signs
by matching the 3x5 font), parses each question against the question templates, and answers from
what it perceived. So it fixes wrong and verbose answers where the picture shows the answer, cannot
fix what the picture does not show (a conversation about another picture, a blank or noise picture,
text-only chat: those turns are kept as they were), and makes its own mistakes: each answer it gives
is replaced by a plausible wrong one with probability ``error_rate`` (default 5%, a calibrated
stand-in for a 9B MLLM's error rate on such pictures), drawn from a seed of (record id, prompt).

The prompt steers one thing a real MLLM would follow: when it asks for short answers ("short",
"single word", "concise", "brief"), free-form questions it can answer get the short-answer
instruction appended and a one-word answer; otherwise each answer keeps its question's format.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.minivqa import questions as Q
from curbench_env.envs.minivqa.scenes import _GLYPHS, CELL_BOXES, COLOURS, POSITIONS, Obj, Scene

from curbench_env.rewrite import RewriteJob, RewriteOutput

_PALETTE = np.array(list(COLOURS.values()), dtype=float)
_COLOUR_NAMES = list(COLOURS)
_SHORT_WORDS = ("short", "single word", "concise", "brief", "one word")
_REL = {"to the left of": (0, -1), "to the right of": (0, 1), "above": (-1, 0), "below": (1, 0)}


def perceive(img: np.ndarray) -> Scene | None:
    """What the picture shows, read from its pixels; None when it shows nothing readable (noise)."""
    px = img.astype(int)
    if (px == px[0, 0]).all():
        return Scene()  # a flat picture: nothing in it
    bg = px[0, 0]
    fg = np.abs(px - bg).max(axis=2) > 40
    if fg.mean() > 0.6:
        return None  # noise: no background to speak of
    dark = (px.max(axis=2) < 70) & fg
    if dark.sum() >= 6 and dark.sum() >= 0.8 * fg.sum():
        word = ""
        for k in range(4):
            ys, xs = np.nonzero(dark[:, 8 * k:8 * k + 8])
            if len(ys) < 3:
                break
            crop = np.zeros((5, 3), dtype=bool)
            for y, x in zip(ys - ys.min(), xs - xs.min(), strict=True):
                if y < 5 and x < 3:
                    crop[y, x] = True
            word += min(_GLYPHS, key=lambda c: int((np.array([[ch == "#" for ch in r] for r in _GLYPHS[c]]) != crop).sum()))
        return Scene(word=word) if word else None
    objs = []
    for p, pos in enumerate(POSITIONS):
        r, c = divmod(p, 2)
        mask = fg[16 * r:16 * r + 16, 16 * c:16 * c + 16]
        n = int(mask.sum())
        if n < 8:
            continue
        mean = px[16 * r:16 * r + 16, 16 * c:16 * c + 16][mask].mean(axis=0)
        colour = _COLOUR_NAMES[int(np.argmin(((_PALETTE - mean) ** 2).sum(axis=1)))]
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        rows = mask[ys.min():ys.max() + 1].sum(axis=1)
        if n / (h * w) > 0.9:
            shape = "square"
        elif rows[: max(1, len(rows) // 4)].mean() < 0.45 * rows[-max(1, len(rows) // 4):].mean():
            shape = "triangle"
        else:
            shape = "circle"
        objs.append(Obj(shape=shape, colour=colour, size="large" if n > 60 else "small", position=pos))
    return Scene(objects=tuple(objs))


def _neighbour(scene: Scene, obj: Obj, rel: str) -> Obj | None:
    r, c = divmod(POSITIONS.index(obj.position), 2)
    dr, dc = _REL[rel]
    r, c = r + dr, c + dc
    return scene.at(POSITIONS[2 * r + c]) if 0 <= r < 2 and 0 <= c < 2 else None


def _find(scene: Scene, colour: str, shape: str) -> Obj | None:
    hits = [o for o in scene.objects if o.colour == colour and o.shape == shape]
    return hits[0] if len(hits) == 1 else None


_C, _S, _P = "(red|green|blue|yellow)", "(circle|square|triangle)", "(top left|top right|bottom left|bottom right)"
_RW = "(to the left of|to the right of|above|below)"
#: (pattern, answer kind, how to answer from a scene) for every question template of questions.py.
_TEMPLATE_TEXTS: list[tuple[str, str, Any]] = [
    (rf"What color is the {_S} at the {_P}\?", "colour", lambda s, m: (o := s.at(m[2])) and o.colour),
    (rf"What shape is at the {_P}\?", "shape", lambda s, m: (o := s.at(m[1])) and o.shape),
    (rf"Is the {_S} at the {_P} large or small\?", "size", lambda s, m: (o := s.at(m[2])) and o.size),
    (rf"Where is the {_C} {_S}\?", "position", lambda s, m: (o := _find(s, m[1], m[2])) and o.position),
    (rf"Is there a {_C} {_S} in the image\?", "yesno",
     lambda s, m: "yes" if any(o.colour == m[1] and o.shape == m[2] for o in s.objects) else "no"),
    (rf"Is the {_S} at the {_P} {_C}\?", "yesno",
     lambda s, m: (o := s.at(m[2])) and ("yes" if o.colour == m[3] else "no")),
    (rf"Is there a shape at the {_P}\?", "yesno", lambda s, m: s.kind == "grid" and ("yes" if s.at(m[1]) else "no")),
    (rf"Is the shape at the {_P} large\?", "yesno",
     lambda s, m: (o := s.at(m[1])) and ("yes" if o.size == "large" else "no")),
    (rf"What color is the shape at the {_P}\?", "colour", lambda s, m: (o := s.at(m[1])) and o.colour),
    (r"How many shapes are there\?", "count", lambda s, m: str(len(s.objects)) if s.kind == "grid" else None),
    (rf"How many {_C} shapes are there\?", "count", lambda s, m: str(sum(o.colour == m[1] for o in s.objects))),
    (rf"What shape is {_RW} the {_C} {_S}\?", "shape",
     lambda s, m: (b := _find(s, m[2], m[3])) and (a := _neighbour(s, b, m[1])) and a.shape),
    (rf"What color is the shape {_RW} the {_C} {_S}\?", "colour",
     lambda s, m: (b := _find(s, m[2], m[3])) and (a := _neighbour(s, b, m[1])) and a.colour),
    (rf"Is the {_C} {_S} {_RW} the {_C} {_S}\?", "yesno",
     lambda s, m: (a := _find(s, m[1], m[2])) and (b := _find(s, m[4], m[5]))
     and ("yes" if _neighbour(s, b, m[3]) == a else "no")),
    (rf"{re.escape(Q.REGION)} (\[[0-9., ]+\])", "phrase",
     lambda s, m: (o := next((s.at(p) for p, b in CELL_BOXES.items() if b == m[1]), None)) and o.phrase),
    (rf"{re.escape(Q.BBOX)} (small|large) {_C} {_S}", "box",
     lambda s, m: (o := [x for x in s.objects if x.phrase == f"{m[1]} {m[2]} {m[3]}"]) and len(o) == 1
     and CELL_BOXES[o[0].position]),
    (r"What word is written in the image\?", "word", lambda s, m: s.word),
    (r"What is the first letter of the word\?", "letterchar", lambda s, m: s.word and s.word[0]),
    (r"How many letters does the word have\?", "count", lambda s, m: s.word and str(len(s.word))),
]
_TEMPLATES = [(re.compile(p + r"$"), k, f) for p, k, f in _TEMPLATE_TEXTS]
_FORMATS = (Q.SHORT, Q.OPTION, Q.YESNO)


def _normalise(q: str) -> str:
    q = re.sub(r"\s+", " ", q.replace("<image>", "")).strip().replace(" ?", "?")
    return q[:1].upper() + q[1:]


def answer(question: str, scene: Scene) -> tuple[str, str] | None:
    """(answer, kind) of one question from a perceived scene, or None when the picture cannot answer it."""
    lines = [ln for ln in question.replace("<image>", "").strip().split("\n") if ln.strip()]
    body = [ln for ln in lines if ln.strip() not in _FORMATS]
    options = [ln for ln in body[1:] if re.match(r"[A-D]\. ", ln)]
    stem = _normalise(body[0]) if body else ""
    if stem in ("Describe the image in detail.",):
        return "The image shows " + scene.caption(), "caption"
    if stem == Q.CAPTION:
        return (f"A sign that says {scene.word}.", "caption") if scene.word else None
    for pattern, kind, fn in _TEMPLATES:
        m = pattern.match(stem)
        if m:
            got = fn(scene, m)
            if not got:
                return None
            if options and str(got) not in {ln[3:].strip() for ln in options}:
                return None
            return str(got), kind
    return None


class SimulatedMLLM:
    """A rule-based MLLM of the MiniVQA world (see the module docstring); pictures from ``pool_dir``."""

    name = "minivqa-sim-mllm"

    def __init__(self, pool_dir: Path, error_rate: float = 0.05) -> None:
        self.pool_dir = Path(pool_dir)
        self.error_rate = error_rate

    @cached_property
    def _images(self) -> tuple[np.ndarray, dict[str, int]]:
        index = json.loads((self.pool_dir / "image_index.json").read_text())
        return np.load(self.pool_dir / "images.npy", mmap_mode="r"), index

    def rewrite(self, jobs: list[RewriteJob]) -> list[RewriteOutput]:
        """Re-answer every job's questions from its picture."""
        return [self._one(job) for job in jobs]

    def _one(self, job: RewriteJob) -> RewriteOutput:
        conv = job.record.get("conversations") or []
        images, index = self._images
        row = index.get(job.record.get("image", ""))
        scene = perceive(np.asarray(images[row])) if row is not None else None
        seed = hashlib.sha256(f"{job.id}\0{job.prompt}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
        short = any(w in job.prompt.lower() for w in _SHORT_WORDS)
        out = []
        for k in range(0, len(conv) - 1, 2):
            q, a = conv[k]["value"], conv[k + 1]["value"]
            got = answer(q, scene) if scene is not None else None
            if got is not None:
                new, kind = got
                if kind != "caption" and rng.random() < self.error_rate:
                    new = Q.wrong_answer(kind, new, rng)
                if not any(f in q for f in _FORMATS) and kind not in ("phrase", "box", "caption"):
                    if short:
                        q = f"{q}\n{Q.SHORT}"
                    else:
                        new = Q.sentence_answer(q, new)
                a = new
            out.append({"from": "human", "value": q})
            out.append({"from": "gpt", "value": a})
        tokens = sum(len(t["value"].split()) for t in conv)
        return RewriteOutput(id=job.id, conversations=out or conv, raw=json.dumps(out),
                             prompt_tokens=tokens + len(job.prompt.split()) + 64,  # 64: the picture's tokens
                             completion_tokens=sum(len(t["value"].split()) for t in out))
