"""The MiniVQA pipeline: LoRA fine-tune of the aligned tiny LLaVA on a selection, then
batched greedy evaluation on the eight benchmarks. Deterministic for a seed."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from curbench_env.envs.llava_pipeline import Encoded, LoraRecipe, finetune_lora, greedy_answers
from curbench_env.envs.minivqa import model as M

from curbench_env.errors import PipelineError
from curbench_env.pipeline import EvalResult
from curbench_env.submission import Selection


@dataclass(frozen=True)
class MiniRecipe:
    """MiniVQA's fixed recipe: LLaVA-1.5's LoRA recipe scaled to a 1.3M-parameter model.

    Two epochs of batch 16 at twice v6's learning rates: 125 steps for a 1,000-example submission, about
    13 s on 2 cores (v6: six epochs of batch 32, 188 steps, 40 s). Measured against the v6 recipe in the
    README's "Speed" section."""

    lora: LoraRecipe = field(default_factory=lambda: LoraRecipe(
        epochs=2.0, batch_size=16, learning_rate=1e-3, projector_lr=1e-4, lora_r=32, lora_alpha=64,
        lora_dropout=0.0, warmup_ratio=0.03, max_length=160, min_steps=30))
    eval_batch_size: int = 200
    max_new_tokens: int = 12
    threads: int = 2
    #: "cpu" is the reference (the scores in the README). "cuda" runs the same recipe on the same
    #: base model on a GPU for large sweeps, several submissions at once; its scores are close to the
    #: CPU's but not identical, so it is part of the fingerprint and results are cached apart.
    device: str = "cpu"


class MiniVQAPipeline:
    """Trains and evaluates the tiny LLaVA; pool data and the base model come from a built world."""

    def __init__(self, world_dir: Path, recipe: MiniRecipe = MiniRecipe()) -> None:
        self.world_dir = Path(world_dir)
        self.recipe = recipe
        self._lock = threading.Lock()  # loading and the encoding cache
        self._sem: threading.BoundedSemaphore | None = None
        self._loaded = False

    #: Submissions one GPU trains and evaluates at once (a 1.3M-parameter model leaves a GPU mostly idle;
    #: ``$CURBENCH_SCORING_SLOTS`` overrides it).
    GPU_CONCURRENCY = 4

    @property
    def scoring_slots(self) -> int:
        """Submissions this machine trains at once (the scorer's queue, shared by processes): one per
        ``threads`` cores on CPU, :attr:`GPU_CONCURRENCY` on a GPU."""
        if self.recipe.device != "cpu":
            return self.GPU_CONCURRENCY
        return max(1, (os.cpu_count() or 2) // self.recipe.threads)

    @property
    def _running(self) -> threading.BoundedSemaphore:
        """How many of this process's threads train or evaluate at once: the machine's scoring slots
        (``$CURBENCH_SCORING_SLOTS`` or :attr:`scoring_slots`). Each run fine-tunes its own copy of the
        base model and seeds its init under a lock, so concurrent runs score what serial runs score."""
        with self._lock:
            if self._sem is None:
                from curbench_env.scorer import scoring_slots

                self._sem = threading.BoundedSemaphore(scoring_slots(self.scoring_slots))
            return self._sem

    # -- lazy state ----------------------------------------------------------------------
    def load(self) -> None:
        """Load the base model, the pool and the benchmarks (once, thread-safe): what a run uses, and what
        the world's signals and the diagnostics in ``benchmarks/`` read (``model``, ``encoder``, ``records``...)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._loaded:
            return
        base_dir = self.world_dir / "base_model"
        if not (base_dir / "config.json").exists():
            raise PipelineError(f"no base model in {base_dir}; run `curbench setup Curation-MiniVQA-v0`")
        self.model, self.tok, self.cfg = M.load_base(base_dir)
        self.model.to(self.recipe.device)
        self.encoder = M.make_encoder(self.tok, self.cfg)
        self.pad_id = self.tok.pad_token_id
        self.eos_id = self.tok.eos_token_id
        pool = self.world_dir / "pool"
        pool_bytes = (pool / "pool.json").read_bytes()
        self.records: dict[str, dict[str, Any]] = {r["id"]: r for r in json.loads(pool_bytes)}
        self.image_row: dict[str, int] = json.loads((pool / "image_index.json").read_text())
        self.images = np.load(pool / "images.npy")
        hidden = self.world_dir / "hidden"
        self.bench = [json.loads(line) for line in (hidden / "benchmarks.jsonl").read_text().splitlines()]
        self.bench_pixels = M.pixel_tensor(np.load(hidden / "bench_images.npy"))
        self.bench_prompts = [self.encoder.prompt(b["question"], True) for b in self.bench]
        self.bench_targets = [M.answer_tokens(self.tok, b["answer"]) for b in self.bench]
        self._encoded: dict[str, Encoded] = {}
        self._base_hash = hashlib.sha256((base_dir / "model.safetensors").read_bytes()).hexdigest()[:16]
        # The world's content, not only its name: a world rebuilt under the same name (another code
        # version) must not be served the old one's cached scores.
        content = hashlib.sha256(pool_bytes)
        content.update((hidden / "benchmarks.jsonl").read_bytes())
        self._world_hash = content.hexdigest()[:16]
        self._loaded = True

    def fingerprint(self) -> str:
        self._load()
        payload = {"world": self.world_dir.name, "content": self._world_hash, "base": self._base_hash,
                   "recipe": asdict(self.recipe)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def encode(self, id_: str, conversations: list[dict[str, str]] | None = None) -> Encoded:
        """Tokenised example for a pool id (or its rewritten conversations)."""
        rec = self.records[id_]
        row = self.image_row.get(rec["image"]) if "image" in rec else None
        if conversations is not None:
            return self.encoder.encode(conversations, row)
        hit = self._encoded.get(id_)
        if hit is None:
            hit = self._encoded[id_] = self.encoder.encode(rec["conversations"], row)
        return hit

    # -- the contract ----------------------------------------------------------------------
    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        with self._lock:
            self._load()
            examples = [self.encode(i, selection.rewrites.get(i, {}).get("conversations")) for i in selection.ids]
        with self._running, torch_threads(self.recipe.threads):
            workdir.mkdir(parents=True, exist_ok=True)
            log_lines: list[str] = []

            def log(msg: str) -> None:
                log_lines.append(msg)

            t0 = time.monotonic()
            log(f"LoRA fine-tune on {len(examples)} examples, seed {seed}: {json.dumps(asdict(self.recipe.lora))}")
            model = finetune_lora(self.model, examples, M.image_loader(self.images), self.recipe.lora, seed=seed,
                                  pad_id=self.pad_id, log=log)
            train_s = time.monotonic() - t0
            scores, eval_log, eval_s = self.evaluate(model)
            train_log = "\n".join(log_lines) + "\n"
            (workdir / "train.log").write_text(train_log)
            (workdir / "eval.log").write_text(eval_log)
            avg = float(np.mean(list(scores.values())))
            return EvalResult(scores=scores, average=avg, timings={"train_s": round(train_s, 2), "eval_s": round(eval_s, 2)},
                              train_log=train_log, eval_log=eval_log, extra={"examples": len(examples)})

    def base_result(self, seed: int) -> EvalResult:
        with self._lock:
            self._load()
        with self._running, torch_threads(self.recipe.threads):
            scores, eval_log, eval_s = self.evaluate(self.model)
            return EvalResult(scores=scores, average=float(np.mean(list(scores.values()))),
                              timings={"train_s": 0.0, "eval_s": round(eval_s, 2)}, eval_log=eval_log)

    def evaluate(self, model: torch.nn.Module) -> tuple[dict[str, float], str, float]:
        """Greedy answers on every benchmark item; exact match on normalised answer tokens."""
        t0 = time.monotonic()
        preds = greedy_answers(model, self.bench_prompts, self.bench_pixels, pad_id=self.pad_id, eos_id=self.eos_id,
                               max_new_tokens=self.recipe.max_new_tokens, batch_size=self.recipe.eval_batch_size)
        correct: dict[str, list[bool]] = {}
        lines = []
        for item, pred, target in zip(self.bench, preds, self.bench_targets, strict=True):
            text = " ".join(self.tok.convert_ids_to_tokens(pred))
            got = M.answer_tokens(self.tok, text)
            ok = got == target
            correct.setdefault(item["benchmark"], []).append(ok)
            lines.append(json.dumps({"benchmark": item["benchmark"], "prediction": text, "target": item["answer"],
                                     "correct": ok}))
        scores = {k: round(100.0 * float(np.mean(v)), 2) for k, v in correct.items()}
        return scores, "\n".join(lines) + "\n", time.monotonic() - t0


class torch_threads:
    """Run torch with a fixed thread count (determinism and a fair share of the machine)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.prev)
