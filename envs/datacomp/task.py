"""``Curation-DataCompSmall-v0``: DataComp's filtering track at small scale (12.8M pairs).

Needs (arguments, else environment variables): ``pool_dir`` / ``CURBENCH_DATACOMP_DIR`` (DataComp's
download directory, ``metadata/`` and ``shards/``, from its ``download_upstream.py --scale small``),
``evalsets`` / ``CURBENCH_DATACOMP_EVALSETS`` (its ``download_evalsets.py`` output: one
clip-benchmark webdataset per task), and GPUs. ``reset`` names whatever is missing.

Evaluation (``evaluator``): ``clip_benchmark`` (default, the installed library: 34 of DataComp's
38 tasks) or ``datacomp`` (``evaluate.py`` of a checkout given as ``datacomp_repo`` /
``CURBENCH_DATACOMP_REPO``: all 38). ``tasks`` (a list or comma-separated DataComp task keys)
scores a subset; the task README and every result say which tasks the score covers.

Tiny scale on a CPU: ``python -m curbench_env.envs.datacomp.tiny OUT`` writes a generated pool,
evaluation sets, model and config, and prints the ``curbench run`` command that uses them
(``require_gpu=false``, ``nproc_per_node=1``).
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path
from typing import Any

from curbench_env.envs.datacomp.pipeline import (
    DataCompPipeline,
    DataCompSettings,
    UidIndex,
    eval_tasks,
    load_uids,
)
from curbench_env.envs.datacomp.tasklist import MAIN_TASKS, evalset_dir, folder_name, resolve
from curbench_env.envs.llava665k.pipeline import config_path

from curbench_env.audit import LeakageIndex
from curbench_env.errors import TaskUnavailable
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask, setting

README = """# Task: filter DataComp small ({POOL:,} image-text pairs) for CLIP pretraining

A fixed pipeline trains CLIP ({MODEL}) from scratch on your subset for {SEEN:,} samples seen
(DataComp's fixed hyper-parameters; a small subset is seen many times), then evaluates it
zero-shot on DataComp's evaluation tasks. The score is the average main metric (0-100) over
{TASKS}.

- Pool: `$POOL/metadata/*.parquet` (`uid`, `text`, `clip_b32_similarity_score`,
  `clip_l14_similarity_score`, `original_width`, `original_height`, ...); pictures and captions
  in `$POOL/shards/*.tar` (webdataset).
- Submit DataComp's subset format: `submit subset.npy`, a sorted structured array of the uids'
  halves, `np.dtype("u8,u8")`; a `.txt` of uids (one per line) is accepted too.
"""


class DataCompSmallTask(CurationTask):
    """DataComp small's filtering track (see the module docstring)."""

    name = "datacomp_small"
    title = "DataComp small: filter 12.8M image-text pairs for CLIP ViT-B/32 (GPU)"
    pool_kind = "image-caption"

    def __init__(self, *, pool_dir: str | Path | None = None, datacomp_repo: str | Path | None = None,
                 evalsets: str | Path | None = None, config: str | Path | None = None, nproc_per_node: int = 8,
                 launcher_args: tuple[str, ...] | list[str] = (), require_gpu: bool = True,
                 evaluator: str = "clip_benchmark", tasks: str | list[str] | None = None) -> None:
        if evaluator not in ("clip_benchmark", "datacomp"):
            raise ValueError(f"unknown DataComp evaluator {evaluator!r}; choose clip_benchmark or datacomp")
        self.evaluator = evaluator
        self.tasks = tuple(t.key for t in resolve(tasks)) if tasks else ()
        self.pool_path = setting(pool_dir, "CURBENCH_DATACOMP_DIR")
        self.repo = setting(datacomp_repo, "CURBENCH_DATACOMP_REPO")
        self.evalsets = setting(evalsets, "CURBENCH_DATACOMP_EVALSETS")
        self.config = Path(config) if config else config_path("datacomp_small.json")
        self.nproc_per_node = nproc_per_node
        self.launcher_args = tuple(launcher_args)
        self.require_gpu = require_gpu
        self._index: UidIndex | None = None

    def missing(self) -> list[str]:
        """Everything this machine lacks for the task, each with how to provide it."""
        out = []
        absent = [m for m in ("open_clip_train", "webdataset", "pyarrow", "clip_benchmark")
                  if importlib.util.find_spec(m) is None]
        if absent:
            out.append(f"Python packages {', '.join(absent)}: pip install 'curbench-env[clip]'")
        if self.require_gpu:
            import torch

            if not torch.cuda.is_available():
                out.append("CUDA GPUs (none is visible to torch); DataComp small takes about 4 A100-hours per run. "
                           "Curation-MiniCLIP-v0 is its CPU proxy")
        if not self.pool_path:
            out.append("the pool: set CURBENCH_DATACOMP_DIR to DataComp's download dir (`python download_upstream.py "
                       "--scale small --data_dir DIR` in a DataComp checkout)")
        else:
            p = Path(self.pool_path)
            if not any((p / "metadata").glob("*.parquet")):
                out.append(f"metadata parquets under {p / 'metadata'} (CURBENCH_DATACOMP_DIR)")
            if not any((p / "shards").glob("*.tar")):
                out.append(f"webdataset shards under {p / 'shards'} (CURBENCH_DATACOMP_DIR)")
        if self.evaluator == "datacomp" and (not self.repo or not (Path(self.repo) / "evaluate.py").exists()):
            out.append("a DataComp checkout for evaluator=datacomp: `git clone https://github.com/mlfoundations/datacomp` "
                       "and set CURBENCH_DATACOMP_REPO (or use evaluator=clip_benchmark, the default)")
        if not self.evalsets or not Path(self.evalsets).is_dir():
            out.append("DataComp's evaluation sets: `python download_evalsets.py DIR` in a DataComp checkout, then set "
                       "CURBENCH_DATACOMP_EVALSETS=DIR")
        elif self.evaluator == "clip_benchmark":
            absent_sets = [t for t in eval_tasks(self.evaluator, self.tasks) if evalset_dir(Path(self.evalsets), t.key) is None]
            if absent_sets:
                shown = ", ".join(folder_name(t.key) for t in absent_sets[:6]) + (" ..." if len(absent_sets) > 6 else "")
                out.append(f"evaluation sets of {len(absent_sets)} task(s) under {self.evalsets} ({shown}); "
                           "download them or choose a subset with tasks=KEY,KEY")
        return out

    def prepare(self) -> None:
        if self._index is not None:
            return
        missing = self.missing()
        if missing:
            raise TaskUnavailable("Curation-DataCompSmall-v0 cannot start; missing:\n  - " + "\n  - ".join(missing))
        self._index = UidIndex(load_uids(Path(self.pool_path) / "metadata"))  # type: ignore[arg-type]

    @property
    def pool_dir(self) -> Path:
        self.prepare()
        return Path(self.pool_path)  # type: ignore[arg-type]

    @property
    def rules(self) -> SubmissionRules:
        return SubmissionRules(budget=len(self.pool), formats=("npy", "txt"), max_file_bytes=1 << 30)

    @property
    def pool(self) -> PoolIndex:
        self.prepare()
        assert self._index is not None
        return self._index

    @cached_property
    def leakage_index(self) -> LeakageIndex:
        # DataComp deduplicated its pool against the evaluation sets upstream; its subsets are
        # only uids of that pool, so there is nothing to leak through a submission.
        return LeakageIndex()

    def audit_items(self, selection: Selection):
        return ((u, None, ()) for u in selection.ids)

    @cached_property
    def pipeline(self) -> DataCompPipeline:
        return DataCompPipeline(DataCompSettings(
            pool_dir=Path(self.pool_path), datacomp_repo=Path(self.repo) if self.repo else None,  # type: ignore[arg-type]
            evalsets=Path(self.evalsets) if self.evalsets else None, config=self.config,
            nproc_per_node=self.nproc_per_node, launcher_args=self.launcher_args, evaluator=self.evaluator,
            tasks=self.tasks))

    def readme(self) -> str:
        cfg = self.pipeline.config()
        tasks = eval_tasks(self.evaluator, self.tasks)
        covered = (f"all {len(MAIN_TASKS)} of DataComp's tasks" if len(tasks) == len(MAIN_TASKS) else
                   f"{len(tasks)} of DataComp's {len(MAIN_TASKS)} tasks: " + ", ".join(t.key for t in tasks))
        return (README.replace("{POOL:,}", f"{len(self.pool):,}").replace("{MODEL}", str(cfg["model"]).split("/")[-1]).replace("{SEEN:,}", f"{cfg['samples_seen']:,}")
                .replace("{TASKS}", covered))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": self.pool_path, "config": str(self.config), "evaluator": self.evaluator,
                "tasks": [t.key for t in eval_tasks(self.evaluator, self.tasks)]}
