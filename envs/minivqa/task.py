"""``Curation-MiniVQA-v0``: the CPU default world."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from curbench_env.envs.minivqa.pipeline import MiniRecipe, MiniVQAPipeline
from curbench_env.envs.minivqa.setup import PRESETS, MiniVQAPreset, ensure_world
from curbench_env.envs.minivqa.world import WorldConfig, audit_texts
from curbench_env.envs.world_secret import ENV_VAR, secret_id

from curbench_env.audit import LeakageIndex, image_hash
from curbench_env.errors import TaskUnavailable
from curbench_env.rewrite import Rewriter, RewriteSetting
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask, setting


class MiniVQATask(CurationTask):
    """A synthetic LLaVA-style world where data curation matters, scored in seconds on a CPU.

    The pool (default 20,000 records in LLaVA-665K's JSON format, mirroring its mix of
    sources) carries realistic defects at per-source rates: wrong answers, image-text
    mismatch, duplicates, blank pictures, verbose answers, off-task text chat, length
    outliers. A tiny ``LlavaForConditionalGeneration`` (stage-1 aligned once and cached) is
    LoRA-fine-tuned on each submission (default budget 1,000 = 5% of the pool) and scored on
    eight held-out benchmarks (0-100, averaged).

    Arguments: ``preset`` (``"default"``; ``"small"``, its base model on a 4,000-example pool; or ``"tiny"``, for
    tests), ``pool_size``, ``budget``, ``seed``
    (the world's seed), ``secret`` (or ``$CURBENCH_WORLD_SECRET``: the benchmarks and the pool's
    labels are drawn from it, so nobody without it can regenerate them; everyone who shares it gets
    the same world and comparable scores; without it the public reference world of the README's
    tables is built), ``allow_rewrite`` (accept rewritten conversations), ``rewriter`` (the rewriting
    setting: ``"sim"``, the simulated MLLM of :mod:`~curbench_env.envs.minivqa.rewriter`, or
    ``litellm:MODEL`` / ``hf:PATH``, with ``rewriter_api_base``), ``rewrite_budget`` (examples per
    episode; default twice the submission budget), ``device``
    (``"cpu"``, the reference, or ``"cuda"`` for fast sweeps: a GPU fine-tunes the same shipped base
    model, several submissions at once, and its scores are close to, not equal to, the CPU's).
    """

    name = "minivqa"
    title = "MiniVQA: select a fine-tuning subset for a tiny LLaVA (CPU)"

    def __init__(self, preset: str = "default", *, pool_size: int | None = None, budget: int | None = None,
                 seed: int | None = None, allow_rewrite: bool = False, device: str = "cpu",
                 secret: str | None = None, rewriter: str | None = None, rewrite_budget: int | None = None,
                 rewriter_api_base: str | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown MiniVQA preset {preset!r}; choose {', '.join(PRESETS)}")
        base = PRESETS[preset]
        world = base.world
        changes: dict[str, Any] = {k: v for k, v in
                                   {"pool_size": pool_size, "budget": budget, "seed": seed}.items() if v is not None}
        # The world secret: from the argument or CURBENCH_WORLD_SECRET; only its public id is kept here.
        self._secret = setting(secret, ENV_VAR)
        if self._secret:
            changes["secret_id"] = secret_id(self._secret)
        if changes:
            world = WorldConfig(**{**world.__dict__, **changes})
        self.preset = MiniVQAPreset(world=world, model=base.model, stage1=replace(base.stage1, device=device))
        self.preset_name = preset
        self.allow_rewrite = allow_rewrite or bool(rewriter)
        self.rewriter = rewriter
        self.rewrite_budget = int(rewrite_budget) if rewrite_budget is not None else 2 * self.preset.world.budget
        self.rewriter_api_base = rewriter_api_base
        self._root: Path | None = None

    def rebuild_base_model(self, log=print, install: bool = False) -> dict[str, bool] | None:  # noqa: ANN001
        """Regenerate the base model from its seed; per pinned file, whether it matches the shipped one.
        ``install``: use the rebuilt model for this world from now on (else it is only compared)."""
        from curbench_env.envs.minivqa.setup import rebuild_base_model

        return rebuild_base_model(self.preset, log, self._secret, install=install)

    def prepare(self) -> None:
        if self._root is not None:
            return
        try:
            import peft  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise TaskUnavailable(
                f"Curation-MiniVQA-v0 needs the 'minivqa' extra ({exc.name} is missing): "
                "pip install 'curbench-env[minivqa]'"
            ) from None
        import torch

        if self.device != "cpu" and not (self.device.startswith("cuda") and torch.cuda.is_available()):
            raise TaskUnavailable(f"Curation-MiniVQA-v0 was asked for device {self.device!r}, which this machine "
                                  "does not have; leave device at 'cpu' (the reference) or run on a CUDA GPU")
        self._root = ensure_world(self.preset, secret=self._secret)

    @property
    def device(self) -> str:
        """Where fine-tuning and evaluation run (part of the world's fingerprint, not the base model's)."""
        return self.preset.stage1.device

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
        return SubmissionRules(budget=self.preset.world.budget, formats=("jsonl", "json", "txt"),
                               allow_rewrite=self.allow_rewrite)

    @cached_property
    def _records(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in json.loads((self.pool_dir / "pool.json").read_text())}

    @property
    def pool(self) -> PoolIndex:
        return PoolIndex(list(self._records), self._records.get)

    @cached_property
    def leakage_index(self) -> LeakageIndex:
        return LeakageIndex.load(self.root / "hidden" / "leakage_index.json")

    @cached_property
    def pipeline(self) -> MiniVQAPipeline:
        return MiniVQAPipeline(self.root, MiniRecipe(device=self.device))

    @cached_property
    def _image_hashes(self) -> dict[str, str]:
        import numpy as np

        images = np.load(self.pool_dir / "images.npy", mmap_mode="r")
        index = json.loads((self.pool_dir / "image_index.json").read_text())
        return {path: image_hash(np.asarray(images[row])) for path, row in index.items()}

    def audit_items(self, selection: Selection):
        for i in selection.ids:
            rec = self._records[i]
            conv = selection.rewrites.get(i, {}).get("conversations", rec["conversations"])
            img = self._image_hashes.get(rec["image"]) if "image" in rec else None
            yield i, img, audit_texts({"conversations": conv})

    def rewrite_setting(self) -> RewriteSetting | None:
        if not self.rewriter:
            return None
        if self.rewriter == "sim":
            from curbench_env.envs.minivqa.rewriter import SimulatedMLLM

            def make() -> Rewriter:
                return SimulatedMLLM(self.pool_dir)
        else:
            from curbench_env.rewriters import rewriter_from_spec

            def make() -> Rewriter:
                return rewriter_from_spec(self.rewriter or "", api_base=self.rewriter_api_base)
        return RewriteSetting(budget=self.rewrite_budget, make_rewriter=make, rewriter_name=self.rewriter,
                              image_of=lambda rec: self.pool_dir / "images" / rec["image"] if "image" in rec else None)

    def tools_dir(self) -> Path:
        return Path(str(resources.files("curbench_env.envs.minivqa") / "tools"))

    def readme(self) -> str:
        text = (resources.files("curbench_env.envs.minivqa") / "README_task.md").read_text()
        w = self.preset.world
        return (text.replace("{POOL_SIZE}", f"{w.pool_size:,}").replace("{BUDGET}", f"{w.budget:,}")
                .replace("{PCT}", f"{100 * w.budget / w.pool_size:.0f}")
                .replace("{REWRITE}", "allowed (full records with edited `conversations`)" if self.allow_rewrite
                         else "not allowed in this variant"))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "preset": self.preset_name, "world": self.preset.fingerprint()}
