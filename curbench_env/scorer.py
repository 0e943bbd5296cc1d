"""The scorer: the task's pipeline behind a content-hash cache (same submission, same score, at once)
and the machine's scoring queue.

Concurrent episodes (threads of one process, or processes) queue for a fixed number of scoring slots
per machine (pipelines that train declare ``scoring_slots``), so eight rollouts on two cores train one
after another instead of thrashing; a subset
that is being scored is scored once: an identical submission waits for it and reads the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
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

    def _cached(self, key: str, compute: Callable[[], EvalResult]) -> EvalResult:
        result = self.cache.get(key)
        if result is not None:
            return result
        with _in_flight(key):  # the same subset from two episodes of this process: scored once
            result = self.cache.get(key)
            if result is None:
                with scoring_slot(getattr(self.pipeline, "scoring_slots", None)) if _queued(self.pipeline) \
                        else contextlib.nullcontext():
                    result = self.cache.get(key)  # another process may have scored it while this one queued
                    if result is None:
                        result = compute()
                        self.cache.put(key, result)
        return result


_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _in_flight(key: str) -> Iterator[None]:
    with _KEY_LOCKS_GUARD:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        yield


def _queued(pipeline: object) -> bool:
    """Pipelines that train declare ``scoring_slots`` and queue; cheap ones (tests' stand-ins) do not,
    unless ``$CURBENCH_SCORING_SLOTS`` asks every pipeline to."""
    return getattr(pipeline, "scoring_slots", None) is not None or bool(os.environ.get("CURBENCH_SCORING_SLOTS"))


def scoring_slots(declared: int | None = None) -> int:
    """How many submissions this machine scores at once: ``$CURBENCH_SCORING_SLOTS``, else what the
    pipeline declares (``scoring_slots``), else one per two CPU cores."""
    env = os.environ.get("CURBENCH_SCORING_SLOTS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise CurbenchError(f"CURBENCH_SCORING_SLOTS must be a whole number, not {env!r}") from None
        if n < 1:
            raise CurbenchError(f"CURBENCH_SCORING_SLOTS must be at least 1, not {n}")
        return n
    return declared or max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def scoring_slot(declared: int | None = None, poll_s: float = 0.2) -> Iterator[None]:
    """Hold one of the machine's scoring slots (an flock on one of N files, so processes share the
    queue and a killed holder frees its slot)."""
    root = Path(tempfile.gettempdir()) / f"curbench-scoring-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        raise CurbenchError(f"{root} is not this user's own directory; remove it (the scoring queue lives there)")
    n = scoring_slots(declared)
    while True:
        for i in range(n):
            fd = os.open(root / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        time.sleep(poll_s)
