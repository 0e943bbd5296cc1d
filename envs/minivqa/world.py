"""Build a MiniVQA world from a seed: the pool (agent-visible), the benchmarks and the ground
truth (hidden); and the stage-1 caption corpus of the base model. Deterministic: the same config
gives the same bytes.

Why curation matters here, and which policies win (world v7):

* **Formats.** The base model (stage-1 aligned on captions and full-sentence answers) answers in
  sentences; every benchmark grades a short answer in its own format (a word, a digit, yes/no, one
  of the listed options, an object phrase). A subset teaches the formats it contains: conversation
  records, sign captions and text-only chat (30% of the pool) teach none, so spending the budget on the
  benchmarks' formats is the largest lever (the ARDS-style "benchmark formats" policy).
* **Noise is a thin top of the loss.** Each source carries a few percent of defects (wrong answers,
  verbose answers, mismatched or broken pictures), and the loss signal is an *early-training* loss
  (the base model fine-tuned on a random 5% of the pool, cross-fitted): within one question type
  of one source, the defects are the examples that model finds most surprising, so the top ~5% of
  each type is mostly noise and the band below it is hard-but-valid examples (more objects, rarer
  answers, the skills the proxy had not yet learned). Plain top-loss (EL2N) therefore picks the
  noise and is the worst policy; top-loss with a p95 noise filter picks the hard valid band and
  beats it by 10-16 points. The policies rank within one question type of one source, one-question
  and multi-question records apart (a record's loss averages over its answers). On the four
  reference worlds the p95 policy is second best (after the format mix) on three and third on one,
  where the pure defect filter beats it inside the seed spread (the README's fidelity table).
* **Every benchmark is learnable from the pool.** World v7 adds single-question yes/no records (VQAv2's
  yes/no third): as one turn among two to five of a ``vqa`` record, the occupancy and size yes/no
  questions stayed at chance even for the full pool (v6); as records of their own the full pool
  learns them. Multiple choice (the ``mc`` source and ``mmbench``) keeps MMBench's lettered options
  but is answered with the option itself: the letter readout stayed near chance whatever the data
  (30 against 25 from 1,000 clean examples). ``benchmarks/learnability.py`` measures each benchmark's
  ceiling.
* **Held-out scenes.** Benchmark pictures come from a fifth of scene space that the pool never
  draws (:func:`~curbench_env.envs.minivqa.scenes.reserved_for_eval`), so no pool picture shows a
  benchmark scene and scores measure generalisation, not recall.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.minivqa import sources as S
from curbench_env.envs.minivqa.benchmarks import BENCHMARKS, make_items
from curbench_env.envs.minivqa.scenes import corrupt, random_scene, render, split_scene
from curbench_env.envs.world_secret import check_secret, public_fields, secret_seed

from curbench_env.audit import LeakageIndex, conversation_texts, image_hash


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and seed of a world. Defaults: the user-facing ``Curation-MiniVQA-v0``."""

    seed: int = 0
    pool_size: int = 20_000
    budget: int = 1_000
    eval_items_per_benchmark: int = 200
    stage1_captions: int = 30_000
    defects: S.DefectRates = field(default_factory=S.DefectRates)
    #: Names the world secret (see :func:`secret_id`), never the secret itself; "" for the public world.
    secret_id: str = ""

    def fingerprint(self) -> str:
        """Stable hash of everything that shapes the world's data (the public world's is unchanged
        by the secret field)."""
        return hashlib.sha256(json.dumps(public_fields(self), sort_keys=True).encode()).hexdigest()[:12]


def _record(id_: str, image: str | None, turns: list[tuple[str, str, str]]) -> dict[str, Any]:
    conv = []
    for k, (q, a, _) in enumerate(turns):
        conv.append({"from": "human", "value": f"<image>\n{q}" if (k == 0 and image) else q})
        conv.append({"from": "gpt", "value": a})
    rec: dict[str, Any] = {"id": id_}
    if image:
        rec["image"] = image
    rec["conversations"] = conv
    return rec


def build_world(cfg: WorldConfig, out: Path, secret: str | None = None) -> dict[str, Any]:
    """Write ``out/pool`` (agent-visible) and ``out/hidden`` (harness only). Returns a summary.

    With a ``secret`` (matching ``cfg.secret_id``), the benchmarks and the pool (with its defect
    labels) are drawn from it; the stage-1 corpus stays public, so every world shares its recipe.
    """
    check_secret(secret, cfg.secret_id)
    pool_dir, hidden = out / "pool", out / "hidden"
    pool_dir.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    rng_eval = np.random.default_rng([cfg.seed, 1, *secret_seed(secret)])
    rng_pool = np.random.default_rng([cfg.seed, 2, *secret_seed(secret)])

    # 1. Benchmarks first: their pictures go into the leakage index.
    index = LeakageIndex()
    bench_images, bench_rows = [], []
    for bench in BENCHMARKS:
        for item in make_items(bench, cfg.eval_items_per_benchmark, rng_eval):
            img = render(item.scene, rng_eval)
            index.add_image(image_hash(img))
            bench_rows.append({"benchmark": bench.name, "image": len(bench_images), "question": item.question,
                               "answer": item.answer, "caption": item.scene.caption()})
            bench_images.append(img)
    np.save(hidden / "bench_images.npy", np.stack(bench_images))
    _write_jsonl(hidden / "benchmarks.jsonl", bench_rows)
    index.save(hidden / "leakage_index.json")

    # 2. The pool.
    records, truth, images = _build_pool(cfg, rng_pool, index)
    # Rows of images.npy follow each path's first appearance in pool.json (exact duplicates
    # share their original's picture): image_index.json maps a record's path to its row.
    paths = list(dict.fromkeys(r["image"] for r in records if "image" in r))
    np.save(pool_dir / "images.npy", np.stack([images[p] for p in paths]))
    with open(pool_dir / "pool.json", "w") as fh:
        json.dump(records, fh)
    _write_jsonl(hidden / "ground_truth.jsonl", truth)
    (pool_dir / "image_index.json").write_text(json.dumps({p: k for k, p in enumerate(paths)}))

    summary = {"config": asdict(cfg), "pool": len(records), "benchmark_items": len(bench_rows),
               "defective": sum(bool(t["defects"]) for t in truth)}
    (hidden / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def stage1_corpus(n: int, seed: int) -> tuple[np.ndarray, list[list[str]]]:
    """LLaVA's stage-1 (pretraining) corpus, scaled down: ``n`` pictures of their own scenes, mostly
    captions, some free-form questions answered in full sentences (the base LM's "pretrained
    knowledge"); never in the benchmarks' short-answer formats. It depends only on ``n`` and the
    alignment seed, not on the world: every world of a preset shares one base model."""
    rng = np.random.default_rng([seed, 3])
    pairs, images = [], []
    for _ in range(n):
        scene = random_scene(rng, sign_prob=0.25)
        images.append(render(scene, rng))
        pairs.append(stage1_pair(scene, rng))
    return np.stack(images), pairs


_CAPTION_PROMPTS = ("Describe the image briefly.", "What is in the picture?", "Give a short caption.",
                    "Summarize the visual content of the image.")


#: Stage-1's own brevity instruction: the base model learns to follow *an* answer-format
#: instruction, but not the benchmarks' ones (those come only from fine-tuning data).
STAGE1_BRIEF = "Reply briefly."


def stage1_pair(scene, rng: np.random.Generator) -> list[str]:
    """One (prompt, response) pair of the stage-1 corpus: a caption, or a question about the
    picture answered in a full sentence or (after :data:`STAGE1_BRIEF`) in a word."""
    from curbench_env.envs.minivqa import questions as Q

    u = rng.random()
    if u < 0.4:
        return [str(rng.choice(_CAPTION_PROMPTS)), scene.caption()]
    kinds = [Q.colour_q, Q.shape_q, Q.where_q, Q.count_q, Q.size_q, Q.relation_q, Q.exist_q,
             Q.attribute_check_q, Q.word_q]
    for _ in range(20):
        qa = kinds[int(rng.integers(len(kinds)))](scene, rng)
        if qa:
            if u < 0.7:
                return [qa[0], Q.sentence_answer(qa[0], qa[1])]
            return [f"{qa[0]} {STAGE1_BRIEF}", qa[1]]
    return [str(rng.choice(_CAPTION_PROMPTS)), scene.caption()]


def _build_pool(cfg: WorldConfig, rng: np.random.Generator, index: LeakageIndex):
    names = list(S.SOURCES)
    shares = np.array([S.SOURCES[n].share for n in names])
    rates = cfg.defects
    n_dups = int(cfg.pool_size * (rates.exact_duplicate + rates.near_duplicate))
    n_base = cfg.pool_size - n_dups
    drafts: list[S.Draft] = []
    while len(drafts) < n_base:
        source = names[int(rng.choice(len(names), p=shares / shares.sum()))]
        spec = S.SOURCES[source]
        scene = split_scene(rng, sign_prob=spec.sign_prob) if spec.image_dir else None
        d = S.draft(source, scene, rng)
        if d is None:
            continue
        S.corrupt_answers(d, spec, rng)
        if spec.image_dir:
            u = rng.random()
            if u < rates.mismatch:
                d.image_scene = split_scene(rng, sign_prob=spec.sign_prob)
                d.defects.append("image_mismatch")
            elif u < rates.mismatch + rates.blank_image:
                d.image_defect = "blank" if rng.random() < 0.5 else "noise"
                d.defects.append("corrupt_image")
        if source == "conv" and rng.random() < rates.length_outlier:
            S.make_long(d, rng)
        drafts.append(d)

    records, truth = [], []
    images: dict[str, np.ndarray] = {}  # path -> picture
    used_ids: set[str] = set()

    def new_id(source: str) -> str:
        while True:
            if source == "text":
                id_ = hashlib.sha1(rng.bytes(8)).hexdigest()[:7] + "_0"
            elif source == "region":
                id_ = f"VG_100K/{int(rng.integers(1, 2_400_000))}"
            elif source in ("gqa", "ocr"):
                id_ = str(int(rng.integers(10**8, 10**10)))
            elif source == "textcaps":
                id_ = hashlib.sha1(rng.bytes(8)).hexdigest()[:16]
            else:
                id_ = f"{int(rng.integers(1, 600_000)):012d}"
            if id_ not in used_ids:
                used_ids.add(id_)
                return id_

    def image_for(d: S.Draft, id_: str) -> str | None:
        spec = S.SOURCES[d.source]
        if spec.image_dir is None:
            return None
        if d.image_defect:
            img = corrupt(d.image_defect, rng)
        else:
            img = render(d.image_scene or d.scene, rng)  # type: ignore[arg-type]
        if image_hash(img) in index.image_hashes:  # contamination control at build time
            img = render(split_scene(rng, sign_prob=spec.sign_prob), rng)
        stem = id_.split("/")[-1] if d.source == "region" else id_
        path = f"{spec.image_dir}/{stem}.png"
        images[path] = img
        return path

    for d in drafts:
        id_ = new_id(d.source)
        records.append(_record(id_, image_for(d, id_), d.turns))
        truth.append({"id": id_, "source": d.source, "defects": d.defects,
                      "caption": d.scene.caption() if d.scene else None})

    # Duplicates: exact copies (new id, same picture and text) and near copies (picture
    # re-rendered with new jitter, question lightly edited).
    originals = [k for k, d in enumerate(drafts) if d.source != "text"]
    n_exact = int(cfg.pool_size * rates.exact_duplicate)
    for j in range(n_dups):
        k = originals[int(rng.integers(len(originals)))]
        d, rec = drafts[k], records[k]
        id_ = new_id(d.source)
        if j < n_exact:
            dup = dict(rec, id=id_)
            kind = "exact_duplicate"
        else:
            turns = [(S.near_duplicate_question(q, rng), a, kind_) for q, a, kind_ in d.turns]
            dup = _record(id_, image_for(d, id_), turns)
            kind = "near_duplicate"
        records.append(dup)
        truth.append({"id": id_, "source": d.source, "defects": d.defects + [kind], "duplicate_of": rec["id"],
                      "caption": d.scene.caption() if d.scene else None})

    order = rng.permutation(len(records))
    return [records[k] for k in order], [truth[k] for k in order], images


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def audit_texts(record: dict[str, Any]) -> list[str]:
    """Texts of a pool record the leakage audit checks."""
    return conversation_texts(record)
