"""``Curation-MiniCLIP-v0``: filter a noisy image-caption pool for CLIP training, on a CPU.

The CPU proxy of DataComp's filtering track: the pool (10,000 pairs from the MiniVQA scene
generator) carries web noise (mismatched captions, alt-text spam and file names, duplicates,
blank pictures); every submission trains a tiny open_clip ViT from scratch for the same number
of samples seen, whatever the subset's size; the score is the mean of zero-shot classification
and image/text retrieval recall@1 on held-out pictures. Submissions: uids, as DataComp's ``.npy``
of (uint64, uint64) pairs, a ``.npy`` of hex strings, or one uid per line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.miniclip.model import ClipRecipe
from curbench_env.envs.miniclip.world import ClipWorldConfig, build_world
from curbench_env.envs.world_secret import ENV_VAR, public_fields, secret_id

from curbench_env.audit import LeakageIndex, image_hash
from curbench_env.errors import TaskUnavailable
from curbench_env.pipeline import build_lock, curbench_home
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask, setting

PRESETS = {
    "default": (ClipWorldConfig(), ClipRecipe()),
    "tiny": (ClipWorldConfig(pool_size=600, reference_pairs=800, reference_samples_seen=8_000, eval_classification=48,
                             eval_retrieval=48),
             ClipRecipe(samples_seen=1_024, batch_size=64, warmup_steps=2)),
}

README = """# Task: filter an image-caption pool for CLIP pretraining (DataComp style)

A fixed pipeline trains a small CLIP model **from scratch** on the pairs you submit, always for
the same number of samples seen ({SEEN:,}), then scores it: zero-shot classification of held-out
pictures into 12 colour-shape classes ("a red circle", ...), and image-to-text / text-to-image
retrieval recall@1. The score is their average (0-100). Your goal: the highest average.

- Pool: {POOL:,} pairs. `$POOL/metadata.jsonl` (and `metadata.parquet`): `uid`, `text`,
  `clip_score` (cosine similarity under a reference CLIP trained on other, clean pairs, like
  DataComp's `clip_b32_similarity_score`), `original_width`, `original_height`. Pictures:
  `$POOL/images.npy` (N x 32 x 32 x 3, rows in metadata order). Reference-CLIP embeddings:
  `$POOL/signals/image_emb.npy`, `text_emb.npy` (rows aligned with `signals/ids.json`).
- Like any web crawl, the pool is noisy. There is no budget: any subset size from 1 up is
  valid; a small subset is seen many times, a large one once or twice.
- Submit uids: `submit subset.npy` (DataComp's format: a structured array of (uint64, uint64)
  pairs, the uid's two halves, e.g. `np.array([(int(u[:16], 16), int(u[16:], 16)) for u in uids],
  np.dtype("u8,u8"))`), or a `.npy` of uid strings, or a `.txt` with one uid per line.
"""


def ensure_world(cfg: ClipWorldConfig, recipe: ClipRecipe, log: Callable[[str], None] = print,
                 secret: str | None = None) -> Path:
    """Build the world and the reference CLIP's scores once (cached, safe across processes)."""
    import hashlib

    key = hashlib.sha256(json.dumps([public_fields(cfg), asdict(recipe)], sort_keys=True).encode()).hexdigest()[:12]
    root = curbench_home() / "miniclip" / key
    if (root / "READY").exists():
        return root
    with build_lock(root.parent / f"{key}.lock"):
        if (root / "READY").exists():
            return root
        t0 = time.monotonic()
        log(f"building the MiniCLIP world ({cfg.pool_size} pairs) in {root}")
        build_world(cfg, root, secret)
        log("training the reference CLIP on separate clean pairs (for clip_score)")
        score_pool(root, cfg, recipe, log)
        (root / "READY").write_text(json.dumps({"seconds": time.monotonic() - t0}))
        log(f"MiniCLIP world ready in {time.monotonic() - t0:.0f}s")
    return root


def score_pool(root: Path, cfg: ClipWorldConfig, recipe: ClipRecipe, log: Callable[[str], None]) -> None:
    """Reference CLIP → ``clip_score`` in the metadata, embeddings in ``signals/``."""
    from curbench_env.envs.miniclip.model import embed, train

    hidden, pool = root / "hidden", root / "pool"
    ref_recipe = replace(recipe, samples_seen=cfg.reference_samples_seen)
    ref, tok = train(np.load(hidden / "reference_images.npy"), json.loads((hidden / "reference_texts.json").read_text()),
                     ref_recipe, seed=12345, log=log)
    images = np.load(pool / "images.npy")
    rows = [json.loads(line) for line in (pool / "metadata.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows]
    img_emb, txt_emb = embed(ref, tok, images, texts)
    scores = (img_emb * txt_emb).sum(1)
    for r, s in zip(rows, scores, strict=True):
        r["clip_score"] = round(float(s), 5)
    (pool / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), pool / "metadata.parquet")
    except ImportError:
        pass
    sig = pool / "signals"
    sig.mkdir(exist_ok=True)
    (sig / "ids.json").write_text(json.dumps([r["uid"] for r in rows]))
    np.save(sig / "clip_score.npy", scores)
    np.save(sig / "image_emb.npy", img_emb)
    np.save(sig / "text_emb.npy", txt_emb)


class MiniCLIPTask(CurationTask):
    """DataComp's filtering track at toy scale (see the module docstring)."""

    name = "miniclip"
    title = "MiniCLIP: filter a noisy image-caption pool for CLIP training (CPU)"
    pool_kind = "image-caption"

    def __init__(self, preset: str = "default", secret: str | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown MiniCLIP preset {preset!r}; choose {', '.join(PRESETS)}")
        self.preset = preset
        self.cfg, self.recipe = PRESETS[preset]
        self._secret = setting(secret, ENV_VAR)  # see envs/world_secret.py; only its id is kept in the config
        if self._secret:
            self.cfg = replace(self.cfg, secret_id=secret_id(self._secret))
        self._root: Path | None = None

    def prepare(self) -> None:
        if self._root is not None:
            return
        try:
            import clip_benchmark  # noqa: F401
            import open_clip  # noqa: F401
        except ImportError as exc:
            raise TaskUnavailable(f"Curation-MiniCLIP-v0 needs the 'clip' extra ({exc.name} is missing): "
                                  "pip install 'curbench-env[clip]'") from None
        self._root = ensure_world(self.cfg, self.recipe, secret=self._secret)

    @property
    def root(self) -> Path:
        if self._root is None:
            self.prepare()
        assert self._root is not None
        return self._root

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    @property
    def rules(self) -> SubmissionRules:
        return SubmissionRules(budget=self.cfg.pool_size, formats=("npy", "txt", "jsonl", "json"))

    @cached_property
    def _uids(self) -> list[str]:
        return json.loads((self.pool_dir / "signals" / "ids.json").read_text())

    @property
    def pool(self) -> PoolIndex:
        return PoolIndex(self._uids)

    @cached_property
    def leakage_index(self) -> LeakageIndex:
        return LeakageIndex.load(self.root / "hidden" / "leakage_index.json")

    @cached_property
    def _image_hashes(self) -> dict[str, str]:
        images = np.load(self.pool_dir / "images.npy")
        return {u: image_hash(im) for u, im in zip(self._uids, images, strict=True)}

    def audit_items(self, selection: Selection):
        for u in selection.ids:
            yield u, self._image_hashes[u], ()

    @cached_property
    def pipeline(self):
        from curbench_env.envs.miniclip.pipeline import MiniCLIPPipeline

        return MiniCLIPPipeline(self.root, self.recipe)

    def readme(self) -> str:
        return README.replace("{SEEN:,}", f"{self.recipe.samples_seen:,}").replace("{POOL:,}", f"{self.cfg.pool_size:,}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "preset": self.preset}
