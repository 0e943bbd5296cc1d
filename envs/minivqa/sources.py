"""The pool's sources, mirroring LLaVA-665K's mixture, and the defects each one carries.

Read this file to see why a sample is noisy: every record is generated from a scene by one
source function, then possibly damaged by one defect function; the defect is recorded in
the hidden ground truth (never in the workspace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from curbench_env.envs.minivqa import questions as Q
from curbench_env.envs.minivqa.scenes import Scene

Turn = tuple[str, str, str]  # question, answer, kind


@dataclass(frozen=True)
class SourceSpec:
    """One source of the pool: its share, where its images live, and its defect rates."""

    name: str
    share: float
    image_dir: str | None  # None: text-only (ShareGPT-like)
    sign_prob: float = 0.0
    wrong_rate: float = 0.0
    verbose_rate: float = 0.0


#: The mixture. Like LLaVA-665K, it is skewed: lots of conversation, region captions and
#: text-only chat; few counting and multiple-choice examples.
SOURCES: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("conv", 0.15, "coco/train2017", wrong_rate=0.02),                      # LLaVA-Instruct
    SourceSpec("vqa", 0.15, "coco/train2017", wrong_rate=0.04, verbose_rate=0.02),    # VQAv2 / OKVQA
    SourceSpec("gqa", 0.12, "gqa/images", wrong_rate=0.05, verbose_rate=0.02),        # GQA
    SourceSpec("mc", 0.05, "coco/train2017", wrong_rate=0.04, verbose_rate=0.03),     # A-OKVQA
    SourceSpec("count", 0.05, "coco/train2017", wrong_rate=0.04, verbose_rate=0.02),  # counting in VQAv2
    SourceSpec("ocr", 0.10, "ocr_vqa/images", sign_prob=1.0, wrong_rate=0.04, verbose_rate=0.02),  # OCR-VQA
    SourceSpec("textcaps", 0.03, "textvqa/train_images", sign_prob=1.0, wrong_rate=0.02),          # TextCaps
    SourceSpec("region", 0.15, "vg/VG_100K", wrong_rate=0.04),                        # VG / RefCOCO
    SourceSpec("text", 0.12, None),                                                   # ShareGPT
    # VQAv2's yes/no questions, one to a record (world v7): the pool's multi-turn `vqa` records hold
    # yes/no turns too, but one turn among two to five does not teach this model the yes/no readouts
    # (benchmarks/learnability.py); single-question records do.
    SourceSpec("yesno", 0.08, "coco/train2017", wrong_rate=0.04, verbose_rate=0.02),  # VQAv2 yes/no
]}


@dataclass
class DefectRates:
    """Defects that cut across sources (rates are shares of the pool)."""

    mismatch: float = 0.015       # the conversation belongs to another image
    blank_image: float = 0.01     # blank or pure-noise picture, conversation unchanged
    exact_duplicate: float = 0.06
    near_duplicate: float = 0.04  # same picture content re-rendered, question lightly edited
    length_outlier: float = 0.08  # of conversation records: rambling, repeated turns


@dataclass
class Draft:
    """A record before it gets an id and an image file."""

    source: str
    scene: Scene | None
    turns: list[Turn]
    defects: list[str] = field(default_factory=list)
    image_scene: Scene | None = None  # what the picture shows, when it differs (mismatch)
    image_defect: str | None = None   # "blank" or "noise"


def _ask(fns: list[Callable], scene: Scene, rng: np.random.Generator, n: int) -> list[Turn]:
    turns: list[Turn] = []
    for _ in range(n * 4):
        qa = fns[int(rng.integers(len(fns)))](scene, rng)
        if qa and all(qa[0] != t[0] for t in turns):
            turns.append(qa)
        if len(turns) == n:
            break
    return turns


def draft(source: str, scene: Scene | None, rng: np.random.Generator) -> Draft | None:
    """Generate one clean record of ``source`` about ``scene``."""
    if source == "conv":
        assert scene is not None
        turns: list[Turn] = [("Describe the image in detail.", "The image shows " + scene.caption(), "free")]
        for q, a, _ in _ask([Q.colour_q, Q.shape_q, Q.where_q, Q.count_q, Q.size_q], scene, rng, int(rng.integers(1, 4))):
            turns.append((q, Q.sentence_answer(q, a), "free"))
        return Draft(source, scene, turns)
    if source == "vqa":
        fns = [Q.colour_q, Q.shape_q, Q.size_q, Q.occupied_q, Q.large_q, Q.where_q]
        turns = [(f"{q}\n{Q.YESNO if kind == 'yesno' and rng.random() < 0.5 else Q.SHORT}", a, kind)
                 for q, a, kind in _ask(fns, scene, rng, int(rng.integers(2, 5)))]
        return Draft(source, scene, turns) if turns else None
    if source == "yesno":
        turns = [(f"{q}\n{Q.YESNO if rng.random() < 0.5 else Q.SHORT}", a, kind)
                 for q, a, kind in _ask([Q.occupied_q, Q.large_q], scene, rng, 1)]
        return Draft(source, scene, turns) if turns else None
    if source == "gqa":
        turns = [(f"{q}\n{Q.SHORT}", a, k) for q, a, k in _ask([Q.relation_q], scene, rng, int(rng.integers(1, 4)))]
        return Draft(source, scene, turns) if turns else None
    if source == "mc":
        turns = [(f"{q}\n{Q.OPTION}", a, k) for q, a, k in _ask([Q.choice_q], scene, rng, 1)]
        return Draft(source, scene, turns) if turns else None
    if source == "count":
        turns = [(f"{q}\n{Q.SHORT}", a, k) for q, a, k in _ask([Q.count_q], scene, rng, int(rng.integers(1, 3)))]
        return Draft(source, scene, turns) if turns else None
    if source == "ocr":
        turns = [(f"{q}\n{Q.SHORT}", a, k) for q, a, k in _ask([Q.word_q], scene, rng, int(rng.integers(1, 3)))]
        return Draft(source, scene, turns) if turns else None
    if source == "textcaps":
        assert scene is not None and scene.word
        return Draft(source, scene, [(Q.CAPTION, f"A sign that says {scene.word}.", "free")])
    if source == "region":
        turns = _ask([Q.region_q, Q.bbox_q], scene, rng, int(rng.integers(1, 4)))
        return Draft(source, scene, turns) if turns else None
    if source == "text":
        return Draft(source, None, chatter(rng), defects=["off_task"])
    raise ValueError(f"unknown source {source!r}")


_TOPICS = ["cooking", "travel", "a birthday party", "the weather", "learning to code", "a good book", "gardening",
           "a football match", "music", "a job interview"]
_FILLER = ["that is a great question", "here are a few ideas", "first of all", "in my opinion", "it depends on",
           "many people think", "on the other hand", "to sum up", "you could also try", "it is important to"]


def chatter(rng: np.random.Generator) -> list[Turn]:
    """A text-only exchange about everyday topics: fluent, but off-task for these benchmarks."""
    turns = []
    for _ in range(int(rng.integers(1, 4))):
        topic = str(rng.choice(_TOPICS))
        ask = str(rng.choice(["Can you tell me about", "What do you think of", "Give me advice on", "Write a note on"]))
        words = " , ".join(str(rng.choice(_FILLER)) for _ in range(int(rng.integers(3, 9))))
        turns.append((f"{ask} {topic}?", f"Sure. {words} , and that is all about {topic}.", "free"))
    return turns


# -- defects -------------------------------------------------------------------------------------
def corrupt_answers(d: Draft, spec: SourceSpec, rng: np.random.Generator) -> None:
    """Label noise and format noise at the source's rates."""
    if spec.wrong_rate and rng.random() < spec.wrong_rate:
        turns = list(d.turns)
        hit = False
        for k, (q, a, kind) in enumerate(turns):
            if kind != "free" and (rng.random() < 0.7 or (not hit and k == len(turns) - 1)):
                turns[k] = (q, Q.wrong_answer(kind, a, rng), kind)
                hit = True
        if hit:
            d.turns = turns
            d.defects.append("wrong_answer")
    if spec.verbose_rate and rng.random() < spec.verbose_rate:
        d.turns = [(q, Q.verbose_answer(q, a, rng) if kind != "free" else a, kind) for q, a, kind in d.turns]
        d.defects.append("bad_format")


def make_long(d: Draft, rng: np.random.Generator) -> None:
    """A length outlier: the same answer repeated into a rambling wall of text."""
    q, a, kind = d.turns[0]
    d.turns[0] = (q, " ".join([a] * int(rng.integers(6, 12))), kind)
    d.defects.append("length_outlier")


def near_duplicate_question(q: str, rng: np.random.Generator) -> str:
    """A lightly edited question (extra spaces, lower-cased first word) for near duplicates."""
    edits = [lambda s: s.replace(" ", "  ", 1), lambda s: s[0].lower() + s[1:], lambda s: s.replace("?", " ?", 1)]
    return edits[int(rng.integers(len(edits)))](q)
