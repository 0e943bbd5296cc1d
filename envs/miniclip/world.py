"""The MiniCLIP world: a DataComp-style image-caption pool built from MiniVQA scenes, with the
noise of web alt-text, and held-out evaluation sets. Deterministic for a seed.

Pool rows (``metadata.parquet`` / ``metadata.jsonl``, pictures in ``images.npy``): ``uid``
(32 hex digits, as DataComp), ``text``, ``clip_score`` (cosine similarity under a reference
CLIP trained once on separate clean pairs: DataComp's ``clip_b32_similarity_score``), and the
picture's size. The noise (hidden ground truth): captions of another picture, alt-text spam and
file names, exact duplicates, blank pictures with generic text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.minivqa.scenes import COLOURS, SHAPES, Obj, Scene, corrupt, random_scene, render
from curbench_env.envs.world_secret import check_secret, public_fields, secret_seed

from curbench_env.audit import LeakageIndex, image_hash


@dataclass(frozen=True)
class ClipWorldConfig:
    """Sizes, noise rates and seed of a MiniCLIP world."""

    seed: int = 0
    pool_size: int = 10_000
    mismatch: float = 0.30
    spam: float = 0.15
    duplicate: float = 0.08
    blank: float = 0.05
    reference_pairs: int = 8_000
    reference_samples_seen: int = 40_000
    eval_classification: int = 360
    eval_retrieval: int = 400
    #: Names the world secret (never the secret); "" for the public world (see envs/world_secret.py).
    secret_id: str = ""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(public_fields(self), sort_keys=True).encode()).hexdigest()[:12]


SPAM = ["buy cheap shapes online free shipping", "best price click here", "stock photo royalty free download",
        "sale sale sale limited offer", "wallpaper hd 4k free", "follow us for more", "image may contain"]
GENERIC = ["image", "untitled", "photo", "picture", "no description"]
#: Zero-shot classes: every colour-shape pair ("a red circle"), as ImageNet's class names.
CLASSES = [f"{c} {s}" for c in COLOURS for s in SHAPES]
TEMPLATES = ["a {c}.", "a photo of a {c}.", "a picture of a {c}."]


def short_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A web-style caption: the full description, or a shorter phrase about some objects."""
    if scene.word is not None or rng.random() < 0.5:
        return scene.caption()
    objs = list(scene.objects)
    rng.shuffle(objs)
    return " and ".join(f"a {o.colour} {o.shape}" for o in objs[: int(rng.integers(1, len(objs) + 1))])


def build_world(cfg: ClipWorldConfig, out: Path, secret: str | None = None) -> dict[str, Any]:
    """Write ``out/pool`` (agent-visible, without clip scores yet) and ``out/hidden``."""
    pool_dir, hidden = out / "pool", out / "hidden"
    pool_dir.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    check_secret(secret, cfg.secret_id)
    # The evaluation sets and the pool (with its noise labels) come from the secret where there is one;
    # the reference CLIP's pairs stay public.
    rng_eval, rng_pool = (np.random.default_rng([cfg.seed, k, 7, *secret_seed(secret)]) for k in (1, 2))
    rng_ref = np.random.default_rng([cfg.seed, 3, 7])

    # Evaluation: zero-shot classification of single-object pictures, and retrieval on scenes.
    index = LeakageIndex()
    cls_images, cls_labels = [], []
    for k in range(cfg.eval_classification):
        label = k % len(CLASSES)
        colour, shape = CLASSES[label].split()
        pos = ("top left", "top right", "bottom left", "bottom right")[int(rng_eval.integers(4))]
        scene = Scene(objects=(Obj(shape, colour, str(rng_eval.choice(["small", "large"])), pos),),
                      background=int(rng_eval.integers(3)))
        cls_images.append(render(scene, rng_eval))
        cls_labels.append(label)
    ret_images, ret_texts = [], []
    for _ in range(cfg.eval_retrieval):
        scene = random_scene(rng_eval, sign_prob=0.1)
        ret_images.append(render(scene, rng_eval))
        ret_texts.append(scene.caption())
    for img in cls_images + ret_images:
        index.add_image(image_hash(img))
    np.savez(hidden / "eval.npz", cls_images=np.stack(cls_images), cls_labels=np.array(cls_labels),
             ret_images=np.stack(ret_images))
    (hidden / "eval_texts.json").write_text(json.dumps(ret_texts))
    index.save(hidden / "leakage_index.json")

    # Reference pairs (clean, separate pictures) for the reference CLIP behind clip_score.
    ref_scenes = [random_scene(rng_ref, sign_prob=0.1) for _ in range(cfg.reference_pairs)]
    np.save(hidden / "reference_images.npy", np.stack([render(s, rng_ref) for s in ref_scenes]))
    (hidden / "reference_texts.json").write_text(json.dumps([short_caption(s, rng_ref) for s in ref_scenes]))

    # The pool.
    n_dup = int(cfg.pool_size * cfg.duplicate)
    images, texts, truth = [], [], []
    while len(texts) < cfg.pool_size - n_dup:
        scene = random_scene(rng_pool, sign_prob=0.1)
        img = render(scene, rng_pool)
        if image_hash(img) in index.image_hashes:
            continue
        u = rng_pool.random()
        text, kind = short_caption(scene, rng_pool), "clean"
        if u < cfg.mismatch:
            text, kind = short_caption(random_scene(rng_pool, sign_prob=0.1), rng_pool), "mismatch"
        elif u < cfg.mismatch + cfg.spam:
            text = str(rng_pool.choice(SPAM)) if rng_pool.random() < 0.6 else \
                f"IMG_{int(rng_pool.integers(1000, 9999))}.JPG"
            kind = "spam"
        elif u < cfg.mismatch + cfg.spam + cfg.blank:
            img, text, kind = corrupt("blank" if rng_pool.random() < 0.5 else "noise", rng_pool), \
                str(rng_pool.choice(GENERIC)), "blank"
        images.append(img)
        texts.append(text)
        truth.append(kind)
    for _ in range(n_dup):
        k = int(rng_pool.integers(len(texts) - 0))
        images.append(images[k])
        texts.append(texts[k])
        truth.append(f"duplicate:{truth[k]}")
    order = rng_pool.permutation(len(texts))
    uids = [rng_pool.bytes(16).hex() for _ in order]
    images = [images[k] for k in order]
    texts = [texts[k] for k in order]
    truth = [truth[k] for k in order]
    np.save(pool_dir / "images.npy", np.stack(images))
    rows = [{"uid": u, "text": t, "original_width": 32, "original_height": 32} for u, t in zip(uids, texts, strict=True)]
    (pool_dir / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (hidden / "ground_truth.jsonl").write_text("".join(json.dumps({"uid": u, "kind": k}) + "\n"
                                                       for u, k in zip(uids, truth, strict=True)))
    return {"pool": len(rows), "noise": {k: sum(t.split(":")[-1] == k for t in truth)
                                         for k in ("clean", "mismatch", "spam", "blank")}}
