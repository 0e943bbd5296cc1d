"""MiniCLIP's pipeline: train a tiny open_clip model from scratch on the subset for a fixed
number of samples seen, then evaluate it with clip_benchmark's zero-shot classification and
retrieval (the code DataComp's own evaluation runs), on held-out pictures."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from curbench_env.envs.miniclip.model import ClipRecipe, pixels, train
from curbench_env.envs.miniclip.world import CLASSES, TEMPLATES
from curbench_env.envs.minivqa.pipeline import torch_threads

from curbench_env.pipeline import EvalResult
from curbench_env.submission import Selection


class _Pairs:
    """A map-style dataset for clip_benchmark's dataloaders."""

    def __init__(self, images, targets, classes: list[str] | None = None) -> None:
        self.images, self.targets, self.classes = images, targets, classes or []

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, k: int):
        return self.images[k], self.targets[k]


def _collate_texts(batch):
    import torch

    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class MiniCLIPPipeline:
    """Train-from-scratch + zero-shot/retrieval evaluation, deterministic for a seed."""

    @property
    def scoring_slots(self) -> int:
        """Submissions this machine trains at once (the scorer's queue): one per ``threads`` cores."""
        return max(1, (os.cpu_count() or 2) // self.recipe.threads)

    def __init__(self, world_dir: Path, recipe: ClipRecipe = ClipRecipe()) -> None:
        self.world_dir = Path(world_dir)
        self.recipe = recipe
        self._lock = threading.Lock()
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        pool = self.world_dir / "pool"
        self.images = np.load(pool / "images.npy")
        rows = [json.loads(line) for line in (pool / "metadata.jsonl").read_text().splitlines()]
        self.row = {r["uid"]: k for k, r in enumerate(rows)}
        self.texts = [r["text"] for r in rows]
        ev = np.load(self.world_dir / "hidden" / "eval.npz")
        self.cls_images, self.cls_labels, self.ret_images = ev["cls_images"], ev["cls_labels"], ev["ret_images"]
        self.ret_texts = json.loads((self.world_dir / "hidden" / "eval_texts.json").read_text())
        self._loaded = True

    def fingerprint(self) -> str:
        payload = {"world": self.world_dir.name, "recipe": asdict(self.recipe), "eval": "clip_benchmark-v1"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        with self._lock, torch_threads(self.recipe.threads):
            self._load()
            rows = [self.row[u] for u in selection.ids]
            log: list[str] = [f"training from scratch on {len(rows)} pairs, {self.recipe.samples_seen} samples "
                              f"seen, seed {seed}"]
            t0 = time.monotonic()
            model, tok = train(self.images[rows], [self.texts[k] for k in rows], self.recipe, seed, log.append)
            train_s = time.monotonic() - t0
            scores, eval_s = self.evaluate(model, tok)
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / "train.log").write_text("\n".join(log) + "\n")
            return EvalResult(scores=scores, average=round(float(np.mean(list(scores.values()))), 4),
                              timings={"train_s": round(train_s, 2), "eval_s": round(eval_s, 2)},
                              train_log="\n".join(log) + "\n", eval_log=json.dumps(scores) + "\n",
                              extra={"examples": len(rows)})

    def base_result(self, seed: int) -> EvalResult:
        """The random-init model (chance level): what training on nothing gives."""
        from curbench_env.envs.miniclip.model import create

        with self._lock:
            self._load()
            model, tok = create(self.recipe, seed)
            model.eval()
            scores, eval_s = self.evaluate(model, tok)
            return EvalResult(scores=scores, average=round(float(np.mean(list(scores.values()))), 4),
                              timings={"train_s": 0.0, "eval_s": round(eval_s, 2)})

    def evaluate(self, model, tok) -> tuple[dict[str, float], float]:
        """Zero-shot accuracy over the 12 colour-shape classes; image/text retrieval recall@1."""
        import functools
        from unittest import mock

        from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval
        from tqdm import tqdm

        t0 = time.monotonic()
        quiet = functools.partial(tqdm, disable=True)  # its progress bars are noise in a user's terminal
        with mock.patch.object(zeroshot_classification, "tqdm", quiet), mock.patch.object(zeroshot_retrieval, "tqdm", quiet):
            scores = self._evaluate(model, tok)
        return scores, time.monotonic() - t0

    def _evaluate(self, model, tok) -> dict[str, float]:
        import torch
        from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

        cls = torch.utils.data.DataLoader(_Pairs(pixels(self.cls_images), torch.as_tensor(self.cls_labels), CLASSES),
                                          batch_size=256)
        # clip_benchmark's classifier and logits; its `evaluate` wrapper trips on numpy 2 (float() of a
        # 1-element array), so top-1 accuracy is taken here from the same logits.
        classifier = zeroshot_classification.zero_shot_classifier(model, tok, list(CLASSES), TEMPLATES, "cpu", amp=False)
        logits, target = zeroshot_classification.run_classification(model, classifier, cls, "cpu", amp=False)
        zs = {"acc1": float((logits.argmax(1) == target).float().mean())}
        ret = torch.utils.data.DataLoader(_Pairs(pixels(self.ret_images), [[t] for t in self.ret_texts]),
                                          batch_size=256, collate_fn=_collate_texts)
        rr = zeroshot_retrieval.evaluate(model, ret, tok, "cpu", amp=False, recall_k_list=[1])
        return {"zeroshot": round(100 * zs["acc1"], 2),
                "image_retrieval": round(100 * rr["image_retrieval_recall@1"], 2),
                "text_retrieval": round(100 * rr["text_retrieval_recall@1"], 2)}
