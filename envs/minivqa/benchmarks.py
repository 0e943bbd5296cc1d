"""The eight held-out MiniVQA benchmarks, each with its own prompt format and scorer.

They mirror the real suite's kinds: short-answer VQA (VQAv2), relations (GQA), OCR
(TextVQA), yes/no object existence (POPE: is there a shape in this cell?), yes/no perception (MME:
is this shape large?), multiple choice (MMBench's layout, options in a fixed order per question kind,
answered with the option's text since world v7),
counting, and region grounding (RefCOCO-style: describe the object in a given box).

World v6 chose these forms so that every benchmark measures something this model can learn from
data: the tiny LM reads an attribute at a place well, but does not learn to compare an attribute
named in the question with the picture (v5's "Is the circle at the top left red?", "Is there a red
circle?" and box prediction from a description stayed at chance even for the full pool). Their images are drawn from a separate seed and are
indexed for the leakage audit; their scenes come from a held-out slice of scene space
(:func:`~curbench_env.envs.minivqa.scenes.reserved_for_eval`) that the pool never draws from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from curbench_env.envs.minivqa import questions as Q
from curbench_env.envs.minivqa.scenes import Scene, split_scene


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: which questions, in which prompt format, and how answers are scored."""

    name: str
    kinds: tuple[Callable, ...]
    suffix: str
    sign_prob: float = 0.0
    metric: str = "exact_match"
    #: Closed answer set drawn uniformly (so a constant guess scores 1/len, whatever it is).
    answers: tuple[str, ...] = ()
    #: Where the closed set is not the answer itself: the label of ``(answer, kind)`` drawn uniformly
    #: from ``answers`` (multiple choice: the option's letter, so every slot is the truth equally often).
    label: Callable[[str, str], str] | None = None


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("vqa", (Q.colour_q, Q.shape_q, Q.size_q), Q.SHORT),
    Benchmark("relations", (Q.relation_q,), Q.SHORT),
    Benchmark("ocr", (Q.word_q,), Q.SHORT, sign_prob=1.0),
    Benchmark("pope", (Q.occupied_q,), Q.SHORT, answers=("yes", "no")),
    Benchmark("mme", (Q.large_q,), Q.YESNO, answers=("yes", "no")),
    Benchmark("mmbench", (Q.choice_q,), Q.OPTION, answers=tuple("ABCD"), label=Q.option_letter),
    Benchmark("count", (Q.count_q,), Q.SHORT, answers=("0", "1", "2", "3", "4")),
    Benchmark("grounding", (Q.region_q,), ""),
)


@dataclass
class EvalItem:
    """One benchmark question about one held-out picture."""

    benchmark: str
    scene: Scene
    question: str
    answer: str


def make_items(bench: Benchmark, n: int, rng: np.random.Generator, *, eval_side: bool = True) -> list[EvalItem]:
    """``n`` items of ``bench``; a closed answer set is cycled through, so answers are uniform
    and no constant guess (the usual failure of a barely tuned model) beats chance. ``eval_side=False``
    draws the pool's slice of scene space instead (training items in the benchmark's own format, for
    ``benchmarks/learnability.py``)."""
    items: list[EvalItem] = []
    while len(items) < n:
        scene = split_scene(rng, sign_prob=bench.sign_prob, eval_side=eval_side)
        qa = bench.kinds[int(rng.integers(len(bench.kinds)))](scene, rng)
        if qa is None:
            continue
        q, a, kind = qa
        label = bench.label(a, kind) if bench.label else a
        if bench.answers and label != bench.answers[len(items) % len(bench.answers)]:
            continue
        prompt = f"{q}\n{bench.suffix}" if bench.suffix and bench.suffix != Q.YESNO else q
        if bench.suffix == Q.YESNO:
            prompt = f"{q} {Q.YESNO}"
        items.append(EvalItem(bench.name, scene, prompt, a))
    return items
