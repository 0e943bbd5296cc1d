"""A tiny curation task for the core tests: a generated pool and a cheap deterministic scorer.

Not registered as a user-facing id. Half the pool is "clean", half "noisy" (hidden label);
the score rewards clean examples, so a policy that reads the visible `quality_hint` wins.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curbench_env.audit import LeakageIndex, conversation_texts
from curbench_env.errors import PipelineError
from curbench_env.pipeline import EvalResult
from curbench_env.submission import PoolIndex, Selection, SubmissionRules
from curbench_env.task import CurationTask

EVAL_TEXT = "What is the secret benchmark question?\nforty-two"


class TinyPipeline:
    def __init__(self, labels: dict[str, bool]) -> None:
        self.labels = labels
        self.runs = 0

    def fingerprint(self) -> str:
        return "tiny-v1"

    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        if "boom" in selection.ids:
            raise PipelineError("the trainer crashed on purpose (id 'boom')")
        self.runs += 1
        clean = sum(self.labels[i] for i in selection.ids)
        n = len(selection.ids)
        a = 20.0 + 60.0 * clean / max(n, 1)
        b = 10.0 + 40.0 * min(n, 50) / 50 + (seed % 3) * 0.5
        (workdir / "train.log").write_text(f"trained on {n} examples\n")
        return EvalResult(scores={"alpha": a, "beta": b}, average=(a + b) / 2,
                          timings={"train_s": 0.01, "eval_s": 0.01}, train_log=f"trained on {n}\n", eval_log="ok\n")

    def base_result(self, seed: int) -> EvalResult:
        return EvalResult(scores={"alpha": 20.0, "beta": 10.0}, average=15.0)


class TinyTask(CurationTask):
    name = "tiny"
    title = "tiny test task"

    def __init__(self, root: str, size: int = 60, budget: int = 20) -> None:
        self.root = Path(root)
        self.size = size
        self.budget = budget
        self._records: dict[str, dict] = {}
        self._labels: dict[str, bool] = {}
        self._pipeline: TinyPipeline | None = None
        self._index = LeakageIndex()

    def prepare(self) -> None:
        if self._records:
            return
        pool = self.root / "pool"
        pool.mkdir(parents=True, exist_ok=True)
        for k in range(self.size):
            id_ = f"ex{k:04d}"
            good = hashlib.sha256(id_.encode()).digest()[0] % 2 == 0
            self._labels[id_] = good
            self._records[id_] = {"id": id_, "image": f"img/{id_}.png", "quality_hint": "good" if good else "bad",
                                  "conversations": [{"from": "human", "value": f"<image>\nQ{k}?"},
                                                    {"from": "gpt", "value": f"A{k}"}]}
        self._labels["boom"] = False
        self._records["boom"] = {"id": "boom", "image": "img/boom.png", "quality_hint": "bad",
                                 "conversations": [{"from": "human", "value": "crash?"}, {"from": "gpt", "value": "yes"}]}
        q, a = EVAL_TEXT.split("\n")
        self._labels["leak01"] = True
        self._records["leak01"] = {"id": "leak01", "image": "img/leak.png", "quality_hint": "good",
                                   "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        with open(pool / "pool.jsonl", "w") as fh:
            for r in self._records.values():
                fh.write(json.dumps(r) + "\n")
        self._index.add_text(EVAL_TEXT)
        self._pipeline = TinyPipeline(self._labels)

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    @property
    def rules(self) -> SubmissionRules:
        return SubmissionRules(budget=self.budget, formats=("jsonl", "json", "txt", "npy"), allow_rewrite=True)

    @property
    def pool(self) -> PoolIndex:
        return PoolIndex(list(self._records), self._records.get)

    @property
    def leakage_index(self) -> LeakageIndex:
        return self._index

    @property
    def pipeline(self) -> TinyPipeline:
        assert self._pipeline is not None
        return self._pipeline

    def readme(self) -> str:
        return "# Tiny task\nPool: $POOL/pool.jsonl. Pick good examples; submit ids.\n"

    def audit_items(self, selection: Selection):
        for i in selection.ids:
            rec = {**self._records[i], **selection.rewrites.get(i, {})}
            yield i, None, conversation_texts(rec)


def run_then_kill(task_root: Path, run_dir: Path, actions: list[str]) -> None:
    """In a child process: start a TinyTask episode in ``run_dir``, take ``actions``, then SIGKILL itself."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from tinytask import TinyTask
        from curbench_env import CurationEnv
        env = CurationEnv(TinyTask({str(task_root)!r}), backend="local", workspace_kwargs={{"warn": False}},
                          run_dir={str(run_dir)!r})
        env.reset(seed=0)
        for action in {actions!r}:
            env.step(action)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
