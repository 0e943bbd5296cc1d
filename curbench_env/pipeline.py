"""The pipeline contract (train + evaluate a selection) and the result cache."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from curbench_env.submission import Selection


@dataclass
class EvalResult:
    """Per-benchmark scores (0–100), their average, logs and timings of one pipeline run."""

    scores: dict[str, float]
    average: float
    timings: dict[str, float] = field(default_factory=dict)
    train_log: str = ""
    eval_log: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(**data)

    def table(self, reference: EvalResult | None = None) -> str:
        """A plain-text table of the scores, with deltas against ``reference``."""
        width = max([len(k) for k in self.scores] + [7])
        lines = []
        for k, v in self.scores.items():
            delta = ""
            if reference is not None and k in reference.scores:
                delta = f"  ({v - reference.scores[k]:+.1f} vs base)"
            lines.append(f"  {k:<{width}}  {v:6.1f}{delta}")
        ref = f"  ({self.average - reference.average:+.2f} vs base)" if reference else ""
        lines.append(f"  {'average':<{width}}  {self.average:6.2f}{ref}")
        return "\n".join(lines)


@runtime_checkable
class Pipeline(Protocol):
    """Trains the fixed model on a selection and evaluates it on the fixed benchmarks."""

    def fingerprint(self) -> str:
        """A stable hash of everything that changes results (model, recipe, benchmarks)."""
        ...

    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        """Train on ``selection`` and evaluate; write logs under ``workdir``."""
        ...

    def base_result(self, seed: int) -> EvalResult:
        """Scores of the model before any fine-tuning."""
        ...


class ResultCache:
    """Results keyed by content hash of (selection, pipeline fingerprint, seed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(selection: Selection, fingerprint: str, seed: int) -> str:
        payload = json.dumps({"selection": selection.content_hash, "pipeline": fingerprint, "seed": seed})
        return hashlib.sha256(payload.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> EvalResult | None:
        """The cached result, or None."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        result = EvalResult.from_dict(data)
        result.cached = True
        return result

    def put(self, key: str, result: EvalResult) -> None:
        """Store a result atomically (concurrent envs may share the cache)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = result.to_dict()
        data["cached"] = False
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock while something cached under ``$CURBENCH_HOME`` is built, so
    concurrent envs (vector envs, sweeps) build it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def curbench_home() -> Path:
    """Where worlds, models and cached results live (``$CURBENCH_HOME``, default ~/.cache/curbench)."""
    return Path(os.environ.get("CURBENCH_HOME", Path.home() / ".cache" / "curbench")).expanduser()
