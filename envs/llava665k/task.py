"""``Curation-LLaVA10k-v0``: select 10k of LLaVA-665K to LoRA-fine-tune LLaVA-1.5-7B; 8 benchmarks.

What it needs, and where it looks (arguments, else environment variables):

- ``pool`` / ``CURBENCH_LLAVA_POOL``: ``llava_v1_5_mix665k.json`` or a ``datasets`` Arrow dir;
- ``image_root`` / ``CURBENCH_LLAVA_IMAGES``: the folder holding coco/, gqa/, ocr_vqa/, textvqa/, vg/;
- ``model`` / ``CURBENCH_LLAVA_MODEL``: the base model in llava-hf format (a folder, or a hub id
  already in the local Hugging Face cache; nothing is downloaded), e.g. a LLaVA-1.5-7B built
  from Vicuna-7B-v1.5 + the stage-1 projector, converted to llava-hf;
- a CUDA GPU (``require_gpu=False`` lets the same code run on CPU, which the tests do at tiny scale);
- the leakage index: ``curbench build-leakage-index Curation-LLaVA10k-v0`` (reads the suite's
  evaluation sets through lmms-eval; they must be available offline).

``reset`` raises one :class:`TaskUnavailable` listing everything that is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cached_property
from pathlib import Path
from typing import Any

from curbench_env.envs.llava665k.pipeline import LlavaPipeline, LlavaSettings, config_path
from curbench_env.envs.llava665k.pool import LlavaPool, load_pool

from curbench_env.audit import LeakageIndex
from curbench_env.errors import TaskUnavailable
from curbench_env.pipeline import curbench_home
from curbench_env.rewrite import RewriteSetting
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask, setting
from curbench_env.workspace.base import Mount

README = """# Task: curate 10k examples of LLaVA-665K for LLaVA-1.5-7B

A fixed pipeline LoRA-fine-tunes LLaVA-1.5-7B (Vicuna-7B-v1.5 with the stage-1 projector;
LLaVA-1.5's finetune_lora recipe: r 128, alpha 256, lr 2e-4, projector lr 2e-5, 1 epoch,
global batch 128) on the examples you submit, then scores it with lmms-eval on 8 benchmarks:
{BENCHMARKS}. The score is their average (0-100). Your goal: the highest average.

- Pool: {POOL_SIZE} records in `$POOL/pool.json` (the original `llava_v1_5_mix665k.json`:
  `id`, `image`, `conversations` of `human`/`gpt` turns; text-only ShareGPT rows have no
  `image`). Pictures: `$POOL/images/<image>`. Ids are the file's `id` values; an id the file
  repeats gets `-1`, `-2`, ... on its later occurrences, in file order.
- Sources (from the image path): coco (LLaVA-Instruct, VQAv2, OKVQA, A-OKVQA, RefCOCO), gqa,
  ocr_vqa, textvqa (TextCaps), vg (Visual Genome regions), and text-only ShareGPT.
- Budget: at most **{BUDGET}** examples per submission. Rewriting: {REWRITE}.
- One scored submission trains a 7B model: expect hours per iteration on one node.

## Submitting
    submit picks.jsonl [--note "what this policy does"]
JSONL of `{"id": ...}`, a JSON list, or one id per line. Refused submissions (unknown ids,
duplicates, over budget, evaluation pictures) cost nothing.
"""


class Llava10kTask(CurationTask):
    """LLaVA-665K → LLaVA-1.5-7B LoRA, lmms-eval suite (the paper's main setting)."""

    name = "llava10k"
    title = "LLaVA-10k: select 10k of LLaVA-665K for LLaVA-1.5-7B (GPU)"

    def __init__(self, *, pool: str | Path | None = None, image_root: str | Path | None = None,
                 model: str | None = None, budget: int = 10_000, suite: str | Path | None = None,
                 recipe: str | Path | None = None, deepspeed: str | Path | None = None,
                 launcher: str = "deepspeed", launcher_args: tuple[str, ...] | list[str] = (),
                 leakage_index: str | Path | None = None, require_gpu: bool = True,
                 allow_rewrite: bool = False, rewriter: str | None = None, rewrite_budget: int = 0,
                 rewriter_api_base: str | None = None) -> None:
        self.pool_path = setting(pool, "CURBENCH_LLAVA_POOL")
        self.image_root = setting(image_root, "CURBENCH_LLAVA_IMAGES")
        self.model = setting(model, "CURBENCH_LLAVA_MODEL")
        self.budget = budget
        self.suite = Path(suite) if suite else config_path("llava_eval_suite.json")
        self.recipe = Path(recipe) if recipe else config_path("llava15_lora.json")
        self.deepspeed = Path(deepspeed) if deepspeed else config_path("zero3.json")
        self.launcher = launcher
        self.launcher_args = tuple(launcher_args)
        self.index_path = Path(leakage_index) if leakage_index else None
        self.require_gpu = require_gpu
        self.allow_rewrite = allow_rewrite
        # The rewriting setting (Curation-LLaVA10k-Rewrite-v0): a budget > 0 needs a rewriter model.
        self.rewriter = setting(rewriter, "CURBENCH_REWRITER")
        self.rewrite_budget = int(rewrite_budget)
        self.rewriter_api_base = setting(rewriter_api_base, "CURBENCH_REWRITER_API_BASE")
        self._pool: LlavaPool | None = None

    # -- boundaries ----------------------------------------------------------------------
    def missing(self) -> list[str]:
        """Everything this machine lacks for the task, each with how to provide it."""
        out = []
        if self.rewrite_budget > 0 and not self.rewriter:
            out.append("the rewriter model of the rewriting setting: pass rewriter=litellm:MODEL (a hosted MLLM, or "
                       "a local vLLM/OpenAI-compatible server with rewriter_api_base=URL) or rewriter=hf:PATH, "
                       "or set CURBENCH_REWRITER")
        absent = [m for m in ("deepspeed", "lmms_eval", "peft", "transformers", "msgspec")
                  if importlib.util.find_spec(m) is None]
        if absent:
            out.append(f"Python packages {', '.join(absent)}: pip install 'curbench-env[llava]'")
        if self.require_gpu:
            try:
                import torch

                if not torch.cuda.is_available():
                    out.append("a CUDA GPU (none is visible to torch); run on a GPU node, or use "
                               "Curation-MiniVQA-v0 on a CPU")
            except ImportError:
                pass
        if not self.pool_path:
            out.append("the pool: pass pool=PATH or set CURBENCH_LLAVA_POOL to llava_v1_5_mix665k.json "
                       "(or a datasets Arrow directory)")
        elif not Path(self.pool_path).exists():
            out.append(f"the pool file {self.pool_path} (CURBENCH_LLAVA_POOL) does not exist")
        if not self.image_root:
            out.append("the image root: pass image_root=DIR or set CURBENCH_LLAVA_IMAGES to the folder with "
                       "coco/, gqa/, ocr_vqa/, textvqa/, vg/")
        elif not Path(self.image_root).is_dir():
            out.append(f"the image root {self.image_root} (CURBENCH_LLAVA_IMAGES) is not a directory")
        if not self.model:
            out.append("the base model: pass model=DIR or set CURBENCH_LLAVA_MODEL to a llava-hf model folder")
        elif not self._model_available(self.model):
            out.append(f"the base model {self.model!r} (CURBENCH_LLAVA_MODEL): not a folder with config.json and "
                       "not in the local Hugging Face cache (downloads are off: HF_HUB_OFFLINE=1)")
        if not self.leakage_index_path.exists():
            out.append(f"the leakage index {self.leakage_index_path}: run `curbench build-leakage-index "
                       "Curation-LLaVA10k-v0` once the evaluation sets are available offline")
        return out

    @staticmethod
    def _model_available(model: str) -> bool:
        if (Path(model) / "config.json").exists():
            return True
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(model, local_files_only=True)
            return True
        except Exception:  # not cached, not a repo id, no hub library: all mean "not available"
            return False

    @property
    def leakage_index_path(self) -> Path:
        if self.index_path is not None:
            return self.index_path
        key = hashlib.sha256(self.suite.read_bytes()).hexdigest()[:12]
        return curbench_home() / "llava665k" / f"leakage_index-{key}.json"

    def prepare(self) -> None:
        if self._pool is not None:
            return
        missing = self.missing()
        if missing:
            raise TaskUnavailable("Curation-LLaVA10k-v0 cannot start; missing:\n  - " + "\n  - ".join(missing))
        self._pool = load_pool(self.pool_path, self.image_root)  # type: ignore[arg-type]

    @property
    def llava_pool(self) -> LlavaPool:
        if self._pool is None:
            self.prepare()
        assert self._pool is not None
        return self._pool

    def rewrite_setting(self) -> RewriteSetting | None:
        if self.rewrite_budget <= 0 or not self.rewriter:
            return None
        from curbench_env.rewriters import rewriter_from_spec

        spec, base = self.rewriter, self.rewriter_api_base
        return RewriteSetting(budget=self.rewrite_budget, rewriter_name=spec,
                              make_rewriter=lambda: rewriter_from_spec(spec, api_base=base),
                              image_of=lambda rec: self.llava_pool.image_path(str(rec.get("id"))))

    # -- what the env needs -----------------------------------------------------------------
    @cached_property
    def pool_dir(self) -> Path:
        """``pool.json`` and ``images`` as links to the user's files (mounted read-only)."""
        origin = self.llava_pool.origin.resolve()
        key = hashlib.sha256(str(origin).encode()).hexdigest()[:12]
        d = curbench_home() / "llava665k" / f"pool-{key}"
        d.mkdir(parents=True, exist_ok=True)
        for name, target in (("pool.json" if origin.is_file() else "pool", origin),
                             ("images", Path(self.image_root).resolve() if self.image_root else None)):
            link = d / name
            if target is not None and not link.is_symlink():
                link.symlink_to(target)
        return d

    def workspace_mounts(self) -> list[Mount]:
        """The linked files at their own paths, so the links resolve inside the sandbox."""
        origin = self.llava_pool.origin.resolve()
        mounts = [Mount(origin, str(origin))]
        if self.image_root:
            root = Path(self.image_root).resolve()
            mounts.append(Mount(root, str(root)))
        return mounts

    @property
    def rules(self) -> SubmissionRules:
        return SubmissionRules(budget=self.budget, formats=("jsonl", "json", "txt"), allow_rewrite=self.allow_rewrite)

    @cached_property
    def pool(self) -> PoolIndex:
        return self.llava_pool.index()

    @cached_property
    def leakage_index(self) -> LeakageIndex:
        return LeakageIndex.load(self.leakage_index_path)

    def _image_file(self, id_: str, export_dir: Path) -> Path | None:
        p = self.llava_pool
        path = p.image_path(id_)
        if path is not None:
            return path
        image = p.load_image(id_)  # a picture stored in an Arrow dataset: export it for the trainer
        if image is None:
            return None
        export_dir.mkdir(parents=True, exist_ok=True)
        out = export_dir / f"{p.row(id_)}.png"
        image.save(out)
        return out

    @cached_property
    def pipeline(self) -> LlavaPipeline:
        origin = self.llava_pool.origin
        stat = origin.stat()
        settings = LlavaSettings(model=str(self.model), recipe=self.recipe, deepspeed=self.deepspeed, suite=self.suite,
                                 launcher=self.launcher, launcher_args=self.launcher_args)
        return LlavaPipeline(settings, self.llava_pool.record, self._image_file,
                             pool_stamp=f"{origin.resolve()}:{stat.st_size}:{int(stat.st_mtime)}")

    def audit_items(self, selection: Selection):
        from curbench_env.envs.llava665k.leakage import picture_key

        for i in selection.ids:
            rec = self.llava_pool.record(i)
            conv = selection.rewrites.get(i, {}).get("conversations", rec["conversations"])
            image = self.llava_pool.load_image(i) if rec.get("image") else None
            texts = [t["value"].replace("<image>", " ") for t in conv[0::2]]
            yield i, picture_key(image) if image is not None else None, texts

    def readme(self) -> str:
        from curbench_env.envs.llava665k.evaluate import Suite

        names = ", ".join(t.name for t in Suite.load(self.suite).tasks)
        return (README.replace("{BENCHMARKS}", names).replace("{POOL_SIZE}", f"{len(self.llava_pool):,}")
                .replace("{BUDGET}", f"{self.budget:,}")
                .replace("{REWRITE}", "allowed" if self.allow_rewrite else "not allowed in this variant"))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": self.pool_path, "model": self.model, "launcher": self.launcher,
                "suite": str(self.suite)}
