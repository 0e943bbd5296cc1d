"""The scorer: the task's pipeline behind a content-hash cache (same submission, same score, at once)."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from curbench_env.errors import CurbenchError, PipelineError
from curbench_env.pipeline import EvalResult, Pipeline, ResultCache, curbench_home
from curbench_env.submission import Selection

if TYPE_CHECKING:
    from curbench_env.task import CurationTask


class ScoringCrash(PipelineError):
    """Training or evaluation crashed; ``log`` holds the traceback."""

    def __init__(self, message: str, log: Path) -> None:
        super().__init__(message)
        self.log = log


class Scorer:
    """Scores selections with a task's fixed pipeline; results are cached by (selection, pipeline, seed)."""

    def __init__(self, task: CurationTask) -> None:
        self.task = task
        self.cache = ResultCache(curbench_home() / "results" / task.name)

    @property
    def pipeline(self) -> Pipeline:
        """The task's pipeline (tasks build it in ``prepare``, so it is looked up when used)."""
        return self.task.pipeline

    def base(self, seed: int) -> EvalResult:
        """The base model's result (no fine-tuning), cached like any other."""
        key = ResultCache.key(Selection(ids=[]), "base:" + self.pipeline.fingerprint(), seed)
        return self._cached(key, lambda: self.pipeline.base_result(seed))

    def score(self, selection: Selection, seed: int, workdir: Path) -> EvalResult:
        """Train and evaluate ``selection`` in ``workdir`` (or serve it from the cache).

        A crash of the pipeline becomes :class:`ScoringCrash` with the traceback in ``workdir/crash.log``.
        """
        key = ResultCache.key(selection, self.pipeline.fingerprint(), seed)

        def run() -> EvalResult:
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                return self.pipeline.run(selection, workdir, seed)
            except Exception as exc:  # a crashed run must leave the episode intact
                log = workdir / "crash.log"
                log.write_text(traceback.format_exc())
                msg = exc.args[0] if isinstance(exc, CurbenchError) and exc.args else f"{type(exc).__name__}: {exc}"
                raise ScoringCrash(str(msg), log) from exc

        return self._cached(key, run)

    def _cached(self, key: str, compute) -> EvalResult:  # noqa: ANN001
        result = self.cache.get(key)
        if result is None:
            result = compute()
            self.cache.put(key, result)
        return result
