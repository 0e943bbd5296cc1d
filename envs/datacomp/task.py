"""``Curation-DataCompSmall-v0``: DataComp's filtering track at small scale (12.8M pairs).

Needs (arguments, else environment variables): ``pool_dir`` / ``CURBENCH_DATACOMP_DIR`` (DataComp's
download directory, ``metadata/`` and ``shards/``, from its ``download_upstream.py --scale small``),
``datacomp_repo`` / ``CURBENCH_DATACOMP_REPO`` (a checkout of mlfoundations/datacomp, for
``evaluate.py``), ``evalsets`` / ``CURBENCH_DATACOMP_EVALSETS`` (its ``download_evalsets.py``
output), and GPUs. ``reset`` names whatever is missing.
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path
from typing import Any

from curbench_env.envs.datacomp.pipeline import DataCompPipeline, DataCompSettings, UidIndex, load_uids
from curbench_env.envs.llava665k.pipeline import config_path

from curbench_env.audit import LeakageIndex
from curbench_env.errors import TaskUnavailable
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask, setting

README = """# Task: filter DataComp small (12.8M image-text pairs) for CLIP pretraining

A fixed pipeline trains CLIP ViT-B/32 from scratch on your subset for 12.8M samples seen
(DataComp small's fixed hyper-parameters; a small subset is seen many times), then runs
DataComp's 38 evaluation tasks. The score is their average main metric (0-100).

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
                 launcher_args: tuple[str, ...] | list[str] = (), require_gpu: bool = True) -> None:
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
        absent = [m for m in ("open_clip_train", "webdataset", "pyarrow") if importlib.util.find_spec(m) is None]
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
        if not self.repo or not (Path(self.repo) / "evaluate.py").exists():
            out.append("a DataComp checkout for its evaluation: `git clone https://github.com/mlfoundations/datacomp` "
                       "and set CURBENCH_DATACOMP_REPO")
        if not self.evalsets or not Path(self.evalsets).is_dir():
            out.append("DataComp's 38 evaluation sets: `python download_evalsets.py DIR` in the checkout, then set "
                       "CURBENCH_DATACOMP_EVALSETS=DIR")
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
            nproc_per_node=self.nproc_per_node, launcher_args=self.launcher_args))

    def readme(self) -> str:
        return README

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": self.pool_path, "config": str(self.config)}
