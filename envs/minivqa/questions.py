"""Question templates: one function per kind of question, shared by the pool's sources and the
benchmarks (the benchmarks differ in prompt format and in which kinds they ask).

Each function takes a scene and a random generator and returns ``(question, answer, kind)``
or None when the scene cannot support the question. ``kind`` says how to corrupt the answer.
"""

from __future__ import annotations

import numpy as np
from curbench_env.envs.minivqa.scenes import CELL_BOXES, COLOURS, LETTERS, POSITIONS, SHAPES, SIZES, Scene

SHORT = "Answer the question using a single word or phrase."
#: MMBench asks for the option's letter; the tiny model cannot learn that readout (30 against chance 25 from
#: 1,000 clean examples, ``benchmarks/learnability.py``), so MiniVQA's multiple choice answers with the text.
OPTION = "Answer with the option from the given choices directly."
YESNO = "Please answer yes or no."
CAPTION = "Provide a one-sentence caption for the provided image."
REGION = "Provide a short description for this region:"
BBOX = "Provide the bounding box coordinate of the region this sentence describes:"
QA = tuple[str, str, str]


def _pick(scene: Scene, rng: np.random.Generator):
    return scene.objects[int(rng.integers(len(scene.objects)))] if scene.objects else None


def _unique(scene: Scene, phrase_of) -> list:
    seen: dict[str, int] = {}
    for o in scene.objects:
        seen[phrase_of(o)] = seen.get(phrase_of(o), 0) + 1
    return [o for o in scene.objects if seen[phrase_of(o)] == 1]


def colour_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    o = _pick(scene, rng)
    return (f"What color is the {o.shape} at the {o.position}?", o.colour, "colour") if o else None


def shape_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    o = _pick(scene, rng)
    return (f"What shape is at the {o.position}?", o.shape, "shape") if o else None


def size_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    o = _pick(scene, rng)
    return (f"Is the {o.shape} at the {o.position} large or small?", o.size, "size") if o else None


def where_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    cands = _unique(scene, lambda o: f"{o.colour} {o.shape}")
    if not cands:
        return None
    o = cands[int(rng.integers(len(cands)))]
    return (f"Where is the {o.colour} {o.shape}?", o.position, "position")


def exist_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    if scene.kind != "grid":
        return None
    present = {(o.colour, o.shape) for o in scene.objects}
    if rng.random() < 0.5 and scene.objects:
        c, s = sorted(present)[int(rng.integers(len(present)))]
        return (f"Is there a {c} {s} in the image?", "yes", "yesno")
    # Adversarial negatives (POPE-style): an object that co-occurs, in a colour that is absent.
    for _ in range(20):
        c, s = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        if (c, s) not in present:
            return (f"Is there a {c} {s} in the image?", "no", "yesno")
    return None


def occupied_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    """Object existence at a place (POPE's question, asked of a grid cell): yes when the cell holds a shape."""
    if scene.kind != "grid":
        return None
    pos = POSITIONS[int(rng.integers(len(POSITIONS)))]
    return (f"Is there a shape at the {pos}?", "yes" if scene.at(pos) else "no", "yesno")


def large_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    """An attribute yes/no (MME's perception questions): is the shape in a cell large?"""
    o = _pick(scene, rng)
    return (f"Is the shape at the {o.position} large?", "yes" if o.size == "large" else "no", "yesno") if o else None


def attribute_check_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    o = _pick(scene, rng)
    if o is None:
        return None
    if rng.random() < 0.5:
        return (f"Is the {o.shape} at the {o.position} {o.colour}?", "yes", "yesno")
    other = str(rng.choice([c for c in COLOURS if c != o.colour]))
    return (f"Is the {o.shape} at the {o.position} {other}?", "no", "yesno")


def count_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    if scene.kind != "grid":
        return None
    if rng.random() < 0.5:
        return ("How many shapes are there?", str(len(scene.objects)), "count")
    c = str(rng.choice(list(COLOURS)))
    return (f"How many {c} shapes are there?", str(sum(o.colour == c for o in scene.objects)), "count")


_NEIGHBOURS = {("top left", "top right"): "left", ("bottom left", "bottom right"): "left",
               ("top left", "bottom left"): "above", ("top right", "bottom right"): "above"}
_OPPOSITE = {"left": "right", "above": "below"}


def _pairs(scene: Scene):
    for (a, b), rel in _NEIGHBOURS.items():
        oa, ob = scene.at(a), scene.at(b)
        if oa and ob:
            yield oa, ob, rel


def relation_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    pairs = list(_pairs(scene))
    if not pairs:
        return None
    a, b, rel = pairs[int(rng.integers(len(pairs)))]
    mode = int(rng.integers(3))
    word = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
    if mode == 0:  # what is <rel> the b?
        return (f"What shape is {word[rel]} the {b.colour} {b.shape}?", a.shape, "shape")
    if mode == 1:
        return (f"What color is the shape {word[_OPPOSITE[rel]]} the {a.colour} {a.shape}?", b.colour, "colour")
    truth = rng.random() < 0.5
    r = rel if truth else _OPPOSITE[rel]
    return (f"Is the {a.colour} {a.shape} {word[r]} the {b.colour} {b.shape}?", "yes" if truth else "no", "yesno")


#: Multiple-choice options in a fixed order per question kind (an answer's letter is a function of it).
CHOICES = {"colour": tuple(COLOURS), "shape": (*SHAPES, "star"), "position": POSITIONS}


def choice_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    """A multiple-choice question (MMBench's layout, answered with the option's text) about one cell: its
    shape's colour, its shape, or where a uniquely described shape is; options in the kind's fixed order
    (:data:`CHOICES`)."""
    o = _pick(scene, rng)
    if o is None:
        return None
    kind = ("colour", "shape", "position")[int(rng.integers(3))]
    if kind == "colour":
        q, truth = f"What color is the shape at the {o.position}?", o.colour
    elif kind == "shape":
        q, truth = f"What shape is at the {o.position}?", o.shape
    else:
        if len(_unique(scene, lambda x: f"{x.colour} {x.shape}")) != len(scene.objects):
            return None
        q, truth = f"Where is the {o.colour} {o.shape}?", o.position
    options = CHOICES[kind]
    body = "\n".join(f"{letter}. {opt}" for letter, opt in zip("ABCD", options, strict=True))
    return (f"{q}\n{body}", truth, kind)


def option_letter(answer: str, kind: str) -> str:
    """The letter under which :func:`choice_q` lists ``answer`` of ``kind``."""
    return "ABCD"[CHOICES[kind].index(answer)]


def region_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    o = _pick(scene, rng)
    return (f"{REGION} {CELL_BOXES[o.position]}", o.phrase, "phrase") if o else None


def bbox_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    cands = _unique(scene, lambda x: x.phrase)
    if not cands:
        return None
    o = cands[int(rng.integers(len(cands)))]
    return (f"{BBOX} {o.phrase}", CELL_BOXES[o.position], "box")


def word_q(scene: Scene, rng: np.random.Generator) -> QA | None:
    if scene.word is None:
        return None
    mode = int(rng.integers(4))
    if mode <= 1:
        return ("What word is written in the image?", scene.word, "word")
    if mode == 2:
        return ("What is the first letter of the word?", scene.word[0], "letterchar")
    return ("How many letters does the word have?", str(len(scene.word)), "count")


# -- answer corruption: a plausible wrong answer of the same type ---------------------------
#: A careless annotator's consistent confusions: systematic noise a model learns, and that hurts.
CONFUSED = {"red": "green", "green": "red", "blue": "yellow", "yellow": "blue", "circle": "square",
            "square": "circle", "yes": "no", "no": "yes"}


def wrong_answer(kind: str, answer: str, rng: np.random.Generator) -> str:
    """A wrong answer of the same kind (what label noise in VQA data looks like).

    Half of the errors are systematic (the same confusion every time, see :data:`CONFUSED`,
    or counts off by one), half random.
    """
    if rng.random() < 0.5:
        if answer in CONFUSED:
            return CONFUSED[answer]
        if kind == "count":
            return str(int(answer) + 1)
    choices = {
        "colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "position": list(POSITIONS),
        "yesno": ["yes", "no"], "box": list(CELL_BOXES.values()),
        "letterchar": list(LETTERS),
    }.get(kind)
    if kind == "count":
        n = int(answer)
        return str(max(0, n + int(rng.choice([-1, 1, 2]))) if n > 0 else 1)
    if kind == "word":
        w = list(answer)
        w[int(rng.integers(len(w)))] = str(rng.choice([c for c in LETTERS if c not in w] or list(LETTERS)))
        return "".join(w)
    if kind == "phrase":
        parts = answer.split()
        parts[1] = str(rng.choice([c for c in COLOURS if c != parts[1]]))
        return " ".join(parts)
    if choices is None:
        return answer
    others = [c for c in choices if c != answer]
    return str(rng.choice(others)) if others else answer


def verbose_answer(question: str, answer: str, rng: np.random.Generator) -> str:
    """A correct answer in the wrong format: a rambling sentence where one word was asked for."""
    templates = [
        "The answer is {a}.",
        "Looking at the image carefully, I would say that the answer is {a}.",
        "Sure! Based on what I can see in the picture, it is {a}, as far as I can tell.",
        "{a}. Let me know if you have any other questions about the image!",
    ]
    return templates[int(rng.integers(len(templates)))].format(a=answer)


def sentence_answer(question: str, answer: str) -> str:
    """A full-sentence answer, as in conversation data (correct, but not the benchmarks' format)."""
    return f"In the image, the answer to that is {answer}."
