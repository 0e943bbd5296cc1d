"""DataComp's evaluation through clip-benchmark, without a DataComp checkout.

    python -m curbench_env.envs.datacomp.clip_eval --train_output_dir EXP --data_dir EVALSETS [--tasks K1,K2]

Reads ``EXP/info.pkl`` (the model name and checkpoint, as DataComp's ``evaluate.py`` does) and
appends one row per task to ``EXP/eval_results.jsonl`` in DataComp's format (``key``, ``dataset``,
``metrics`` with ``main_metric``). Each evaluation set is a clip-benchmark webdataset
(``build_dataset("wds/<task>")``); classification runs clip-benchmark's zero-shot classifier over
the set's class names and templates, retrieval its ``zeroshot_retrieval.evaluate`` (recall@1/5/10),
and the metrics are DataComp's (``eval_utils/wds_eval.py``, ``retr_eval.py``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from curbench_env.envs.datacomp.tasklist import EvalTask, evalset_dir, folder_name, resolve

from curbench_env.errors import PipelineError


def load_model(model_name: str, checkpoint: str | Path, device: str):
    """An open_clip model with the trained weights, its eval transform and tokenizer."""
    import open_clip
    import torch

    torch.manual_seed(0)
    # A "local-dir:" model ignores `pretrained`, so the checkpoint is loaded explicitly for every name.
    model, _, transform = open_clip.create_model_and_transforms(model_name, pretrained=None)
    open_clip.load_checkpoint(model, str(checkpoint), weights_only=False)
    model.eval().to(device)
    return model, transform, open_clip.get_tokenizer(model_name)


def _loader(dataset, batch_size: int, workers: int):
    import torch

    return torch.utils.data.DataLoader(
        dataset.batched(batch_size), batch_size=None, shuffle=False, num_workers=workers
    )


def classification_metrics(logits, target, metric: str) -> dict[str, float | None]:
    """DataComp's classification metrics from zero-shot logits: acc1, acc5 (5+ classes),
    mean per-class recall, and iWildCam's macro F1 over the classes present."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    pred = logits.argmax(dim=1)
    n = len(target)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    out: dict[str, float | None] = {
        "acc1": float((pred == target).float().sum()) / n,
        "acc5": float((top5 == target[:, None]).any(dim=1).float().sum()) / n
        if logits.shape[1] >= 5
        else None,
        "mean_per_class_recall": float(balanced_accuracy_score(target.numpy(), pred.numpy())),
    }
    if metric == "F1-macro_all":
        labels = sorted(set(target.tolist()))
        out[metric] = float(f1_score(target.numpy(), pred.numpy(), average="macro", labels=labels))
    return out


def evaluate_task(
    task: EvalTask,
    model,
    transform,
    tokenizer,
    data_root: Path,
    device: str,
    batch_size: int = 64,
    workers: int = 0,
) -> dict[str, Any]:
    """One task's metrics (DataComp's names) with ``main_metric`` set."""
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification as zsc
    from clip_benchmark.metrics import zeroshot_retrieval as zsr

    root = evalset_dir(data_root, task.key)
    if root is None:
        raise PipelineError(
            f"no evaluation set for {task.key} ({task.name}) under {data_root}: expected "
            f"{data_root / folder_name(task.key) / 'test' / 'nshards.txt'}"
        )
    if task.kind not in ("retrieval", "classification"):
        raise PipelineError(f"{task.key} ({task.name}) needs DataComp's own evaluate.py (evaluator=datacomp)")
    dataset = build_dataset(
        f"wds/{task.key}",
        root=str(root),
        transform=transform,
        split="test",
        download=False,
        task=f"zeroshot_{task.kind}",
    )
    if task.kind == "retrieval":
        metrics = zsr.evaluate(
            model,
            _loader(dataset, batch_size, workers),
            tokenizer,
            recall_k_list=[1, 5, 10],
            device=device,
            amp=False,
        )
        metrics["mean_recall@1"] = 0.5 * (
            metrics["text_retrieval_recall@1"] + metrics["image_retrieval_recall@1"]
        )
    else:
        # clip-benchmark's classifier and logits; its `evaluate`/`accuracy` wrappers call float() on a
        # 1-element array, which numpy 2 refuses, so the metrics come from the same logits here.
        classifier = zsc.zero_shot_classifier(
            model, tokenizer, dataset.classes, dataset.templates, device, amp=False
        )
        logits, target = zsc.run_classification(
            model, classifier, _loader(dataset, batch_size, workers), device, amp=False
        )
        metrics = classification_metrics(logits, target, str(task.main_metric))
    metrics["main_metric"] = metrics.get(str(task.main_metric))
    return metrics


def evaluate(
    train_output_dir: Path, data_dir: Path, tasks: tuple[EvalTask, ...], batch_size: int = 64, log=print
) -> list[dict[str, Any]]:
    """Evaluate the experiment's checkpoint on ``tasks``; append DataComp rows to ``eval_results.jsonl``."""
    import functools
    from unittest import mock

    import torch
    from clip_benchmark.metrics import zeroshot_classification as zsc
    from clip_benchmark.metrics import zeroshot_retrieval as zsr
    from tqdm import tqdm

    info = pickle.loads((Path(train_output_dir) / "info.pkl").read_bytes())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, transform, tokenizer = load_model(info["scale_config"]["model"], info["checkpoint"], device)
    results = Path(train_output_dir) / "eval_results.jsonl"
    rows = []
    quiet = functools.partial(tqdm, disable=True)  # progress bars would fill the log
    with mock.patch.object(zsc, "tqdm", quiet), mock.patch.object(zsr, "tqdm", quiet):
        for task in tasks:
            t0 = time.monotonic()
            log(f"Evaluating on {task.name} ({task.key}) with clip-benchmark")
            row = {
                "key": task.key,
                "dataset": task.name,
                "metrics": evaluate_task(
                    task, model, transform, tokenizer, Path(data_dir), device, batch_size
                ),
            }
            log(
                f"Score: {row['metrics']['main_metric']:.4f} ({task.main_metric}, {time.monotonic() - t0:.1f}s)"
            )
            with open(results, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    from curbench_env.compat import ensure_torchvision

    ensure_torchvision()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_output_dir", required=True, type=Path)
    p.add_argument("--data_dir", required=True, type=Path)
    p.add_argument(
        "--tasks",
        default="all",
        help="comma-separated DataComp task keys (default: every task clip-benchmark evaluates)",
    )
    p.add_argument("--batch_size", default=64, type=int)
    args = p.parse_args(argv)
    try:
        evaluate(args.train_output_dir, args.data_dir, resolve(args.tasks), args.batch_size)
    except (PipelineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
