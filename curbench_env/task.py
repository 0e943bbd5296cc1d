"""The task contract: what a task family gives the env (pool, README, rules, audit, pipeline)."""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curbench_env.audit import LeakageIndex
from curbench_env.pipeline import Pipeline
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.workspace.base import Mount

if TYPE_CHECKING:
    from curbench_env.rewrite import RewriteSetting


def setting(value: object, var: str) -> str | None:
    """A task setting: the argument when given, else the environment variable ``var`` (None if neither)."""
    got = value if value is not None else os.environ.get(var)
    return str(got) if got else None


class CurationTask(abc.ABC):
    """A curation task: a candidate pool, submission rules, an audit index and a fixed pipeline.

    Subclasses build their data lazily in :meth:`prepare`, which raises
    :class:`~curbench_env.errors.TaskUnavailable` naming anything missing (GPU, weights, data).
    """

    #: Short name used in ids, run directories and caches.
    name: str = "task"
    #: One line shown in listings.
    title: str = ""
    #: What a pool record is: "conversations" (LLaVA-style instruction data) or "image-caption"
    #: (DataComp-style pairs). Policies read it from ``info["pool_kind"]``.
    pool_kind: str = "conversations"

    @abc.abstractmethod
    def prepare(self) -> None:
        """Build or load the pool, the evaluation sets and the base model (cached on disk)."""

    @property
    @abc.abstractmethod
    def pool_dir(self) -> Path:
        """Directory mounted read-only at /pool: everything the agent may inspect."""

    @property
    @abc.abstractmethod
    def rules(self) -> SubmissionRules:
        """What a submission may contain."""

    @property
    @abc.abstractmethod
    def pool(self) -> PoolIndex:
        """Ids (and records) of the pool, for validation."""

    @property
    @abc.abstractmethod
    def leakage_index(self) -> LeakageIndex:
        """Hashes of the evaluation sets."""

    @property
    @abc.abstractmethod
    def pipeline(self) -> Pipeline:
        """The fixed train-and-evaluate pipeline."""

    @abc.abstractmethod
    def readme(self) -> str:
        """The task README the agent reads (Markdown)."""

    def workspace_files(self) -> dict[str, str]:
        """Files (relative path → text) placed in a fresh workspace. README.md by default."""
        return {"README.md": self.readme()}

    def workspace_mounts(self) -> list[Mount]:
        """Host paths the workspace needs besides the pool dir (e.g. targets of links in it)."""
        return []

    def tools_dir(self) -> Path | None:
        """A directory of executables added to the workspace PATH, or None."""
        return None

    def audit_items(self, selection: Selection) -> Iterable[tuple[str, str | None, Iterable[str]]]:
        """(id, image content hash, texts) of each selected example, for the leakage audit."""
        return ((i, None, ()) for i in selection.ids)

    def rewrite_setting(self) -> RewriteSetting | None:
        """The rewriting tool of this task (its budget and rewriter), or None where there is none."""
        return None

    def describe(self) -> dict[str, Any]:
        """Plain data about the task for the run directory's config."""
        return {"name": self.name, "title": self.title, "budget": self.rules.budget}
