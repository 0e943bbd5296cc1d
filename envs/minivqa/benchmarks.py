"""The eight held-out MiniVQA benchmarks, each with its own prompt format and scorer.

They mirror the real suite's kinds: short-answer VQA (VQAv2), relations (GQA), OCR
(TextVQA), yes/no existence (POPE), yes/no perception (MME), multiple choice (MMBench),
counting, and grounding (RefCOCO). Their images are drawn from a separate seed and are
indexed for the leakage audit; none of them is in the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from curbench_env.envs.minivqa import questions as Q
from curbench_env.envs.minivqa.scenes import CELL_BOXES, Scene, random_scene


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


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("vqa", (Q.colour_q, Q.shape_q, Q.size_q), Q.SHORT),
    Benchmark("relations", (Q.relation_q,), Q.SHORT),
    Benchmark("ocr", (Q.word_q,), Q.SHORT, sign_prob=1.0),
    Benchmark("pope", (Q.exist_q,), Q.SHORT, answers=("yes", "no")),
    Benchmark("mme", (Q.attribute_check_q,), Q.YESNO, answers=("yes", "no")),
    Benchmark("mmbench", (Q.choice_q,), Q.LETTER, answers=tuple("ABCD")),
    Benchmark("count", (Q.count_q,), Q.SHORT, answers=("0", "1", "2", "3", "4")),
    Benchmark("grounding", (Q.bbox_q,), "", answers=tuple(CELL_BOXES.values())),
)


@dataclass
class EvalItem:
    """One benchmark question about one held-out picture."""

    benchmark: str
    scene: Scene
    question: str
    answer: str


def make_items(bench: Benchmark, n: int, rng: np.random.Generator) -> list[EvalItem]:
    """``n`` items of ``bench``; a closed answer set is cycled through, so answers are uniform
    and no constant guess (the usual failure of a barely tuned model) beats chance."""
    items: list[EvalItem] = []
    while len(items) < n:
        scene = random_scene(rng, sign_prob=bench.sign_prob)
        qa = bench.kinds[int(rng.integers(len(bench.kinds)))](scene, rng)
        if qa is None:
            continue
        q, a, kind = qa
        if bench.answers and a != bench.answers[len(items) % len(bench.answers)]:
            continue
        prompt = f"{q}\n{bench.suffix}" if bench.suffix and bench.suffix != Q.YESNO else q
        if bench.suffix == Q.YESNO:
            prompt = f"{q} {Q.YESNO}"
        items.append(EvalItem(bench.name, scene, prompt, a))
    return items
