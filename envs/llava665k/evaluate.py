"""Score a llava-hf model (optionally with a LoRA adapter) on the benchmark suite via lmms-eval.

    python -m curbench_env.envs.llava665k.evaluate --model DIR [--adapter DIR] \
        --suite configs/llava_eval_suite.json --out DIR

lmms-eval does the work: its ``llava_hf`` model (the adapter merged into it in memory), its
task definitions and metrics, through ``lmms_eval.evaluator.simple_evaluate``. A suite names
the tasks, the metric read from each and the factor that puts it on 0-100; tasks can come from
lmms-eval's own definitions (their datasets must be available offline: ``HF_HUB_OFFLINE=1``)
or from YAML files under the suite's ``include_path`` that point lmms-eval's tasks at local
copies. lmms-eval reports some failures only in its log; a task without its metric in the
results is an error here. Writes ``eval.json`` (scores, average, lmms-eval's raw results) and
``samples_<task>.jsonl`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curbench_env.errors import PipelineError


@dataclass(frozen=True)
class SuiteTask:
    """One benchmark: the lmms-eval task, the metric read from it, the factor to 0-100."""

    name: str
    task: str
    metric: str
    scale: float = 100.0


@dataclass(frozen=True)
class Suite:
    """The benchmark suite of a setting (``configs/llava_eval_suite.json``)."""

    tasks: tuple[SuiteTask, ...]
    include_path: str | None = None
    batch_size: int = 1
    limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Suite:
        raw = json.loads(Path(path).read_text())
        include = raw.get("include_path")
        if include and not Path(include).is_absolute():
            include = str((Path(path).parent / include).resolve())
        return cls(tasks=tuple(SuiteTask(**t) for t in raw["tasks"]), include_path=include,
                   batch_size=int(raw.get("batch_size", 1)), limit=raw.get("limit"))

    def fingerprint(self) -> dict[str, Any]:
        return {"tasks": [t.__dict__ for t in self.tasks], "limit": self.limit}


def score(results: dict[str, Any], suite: Suite) -> dict[str, float]:
    """0-100 score per benchmark from lmms-eval's ``results`` (a clear error for missing ones)."""
    scores: dict[str, float] = {}
    missing = []
    for t in suite.tasks:
        value = results.get(t.task, {}).get(f"{t.metric},none")
        if value is None or isinstance(value, str):
            missing.append(f"{t.task} ({t.metric})")
            continue
        scores[t.name] = round(float(value) * t.scale, 2)
    if missing:
        raise PipelineError(f"lmms-eval returned no result for {', '.join(missing)}; see its log above "
                            "(a task whose data is not available offline fails this way)")
    return scores


def evaluate(model_dir: str, suite: Suite, out: Path, *, adapter: Path | None = None, device: str | None = None,
             seed: int = 0) -> dict[str, Any]:
    """Run the suite in this process; returns and writes ``eval.json``."""
    import torch
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models.simple.llava_hf import LlavaHf
    from lmms_eval.tasks import TaskManager

    device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    lm = LlavaHf(pretrained=str(model_dir), device=device, device_map=device, dtype=dtype,
                 batch_size=suite.batch_size)
    if adapter is not None:
        from peft import PeftModel

        lm._model = PeftModel.from_pretrained(lm._model, str(adapter)).merge_and_unload()
    lm._model.eval()
    manager = TaskManager(include_path=suite.include_path) if suite.include_path else TaskManager()
    res = simple_evaluate(model=lm, tasks=[t.task for t in suite.tasks], task_manager=manager,
                          batch_size=suite.batch_size, limit=suite.limit, log_samples=True, random_seed=seed,
                          numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    if not res or "results" not in res:
        raise PipelineError("lmms-eval returned nothing (is this the main process of a distributed run?)")
    scores = score(res["results"], suite)
    out.mkdir(parents=True, exist_ok=True)
    for task, samples in (res.get("samples") or {}).items():
        with open(out / f"samples_{task}.jsonl", "w") as fh:
            for s in samples:
                fh.write(json.dumps({k: s.get(k) for k in ("doc_id", "target", "filtered_resps")}, default=str) + "\n")
    report = {"scores": scores, "average": round(sum(scores.values()) / len(scores), 4),
              "results": json.loads(json.dumps(res["results"], default=str)), "adapter": str(adapter) if adapter else None}
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", type=Path, default=None)
    ap.add_argument("--suite", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    report = evaluate(a.model, Suite.load(a.suite), a.out, adapter=a.adapter, device=a.device, seed=a.seed)
    print(json.dumps({"scores": report["scores"], "average": report["average"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
