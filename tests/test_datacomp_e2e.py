"""Curation-DataCompSmall-v0 end to end at tiny scale: a generated DataComp pool, a tiny open_clip
model trained through torchrun + open_clip_train, evaluated by clip-benchmark on generated
webdataset evaluation sets (DataComp's task names and metrics), scored, audited and recorded."""

from __future__ import annotations

import json
import time

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("open_clip_train")
pytest.importorskip("clip_benchmark")
pytest.importorskip("pyarrow")

from curbench_env.envs.datacomp.tasklist import (  # noqa: E402
    LIBRARY_TASKS,
    MAIN_TASKS,
    evalset_dir,
    folder_name,
    resolve,
)
from curbench_env.envs.datacomp.tiny import TINY_TASKS, TinyDataComp  # noqa: E402

from curbench_env.errors import TaskUnavailable  # noqa: E402


@pytest.fixture(scope="module")
def tiny_datacomp(tmp_path_factory):
    return TinyDataComp().build(tmp_path_factory.mktemp("tiny-datacomp"))


def _task_kwargs(paths, **over):
    return {
        "pool_dir": str(paths["pool_dir"]),
        "evalsets": str(paths["evalsets"]),
        "config": str(paths["config"]),
        "require_gpu": False,
        "nproc_per_node": 1,
        "tasks": ",".join(TINY_TASKS),
        **over,
    }


def test_task_list_is_datacomps_38_averaged_tasks():
    assert len(MAIN_TASKS) == 38 and len(LIBRARY_TASKS) == 34
    assert {t.key for t in MAIN_TASKS} - {t.key for t in LIBRARY_TASKS} == {
        "misc/winogavil",
        "wilds/fmow",
        "fairness/dollar_street",
        "fairness/geode",
    }
    # The folders DataComp's download_evalsets.py writes.
    assert folder_name("vtab/pets") == "wds_vtab-pets_test"
    assert folder_name("fairness/geode") == "wds_geode_test"
    with pytest.raises(ValueError, match="unknown DataComp task"):
        resolve("imagenet1k,not_a_task")


def test_classification_metrics_are_datacomps():
    import torch
    from curbench_env.envs.datacomp.clip_eval import classification_metrics

    # 6 classes; samples of class 0 are all right, class 1 half right, class 2 wrong (second guess right).
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.zeros(6, 6)
    for k, (top, second) in enumerate([(0, 1), (0, 1), (1, 0), (0, 1), (3, 2), (3, 2)]):
        logits[k, top], logits[k, second] = 2.0, 1.0
    m = classification_metrics(logits, target, "F1-macro_all")
    assert m["acc1"] == pytest.approx(3 / 6) and m["acc5"] == 1.0
    assert m["mean_per_class_recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["F1-macro_all"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)  # over the classes present only


def test_reset_names_missing_evaluation_sets_and_checkout(tmp_path, tiny_datacomp):
    from curbench_env.envs.datacomp.task import DataCompSmallTask

    (tmp_path / "evalsets").mkdir()
    task = DataCompSmallTask(**_task_kwargs(tiny_datacomp, evalsets=str(tmp_path / "evalsets"), tasks=None))
    with pytest.raises(TaskUnavailable) as err:
        task.prepare()
    assert "34 task(s)" in str(err.value) and "wds_vtab-caltech101_test" in str(err.value)
    task = DataCompSmallTask(**_task_kwargs(tiny_datacomp, evaluator="datacomp", datacomp_repo=str(tmp_path)))
    with pytest.raises(TaskUnavailable, match="DataComp checkout for evaluator=datacomp"):
        task.prepare()
    with pytest.raises(ValueError, match="unknown DataComp evaluator"):
        DataCompSmallTask(evaluator="lmms")
    assert all(evalset_dir(tiny_datacomp["evalsets"], k) for k in TINY_TASKS)


@pytest.mark.slow
def test_tiny_episode_trains_evaluates_with_clip_benchmark_and_records(tmp_path, tiny_datacomp):
    import pyarrow.parquet as pq
    from curbench_env.agents.scripted import SinglePolicyAgent

    from curbench_env.runner import run_episode

    t0 = time.monotonic()
    env = gym.make(
        "Curation-DataCompSmall-v0",
        task_kwargs=_task_kwargs(tiny_datacomp),
        backend="local",
        iteration_budget=1,
        run_dir=str(tmp_path / "run"),
        workspace_kwargs={"warn": False},
    )
    try:
        summary = run_episode(env, SinglePolicyAgent("clip_score30"), seed=0, progress=False)
        base = env.unwrapped.base
        hist = env.unwrapped.history
    finally:
        env.close()
    wall = time.monotonic() - t0

    # The baseline kept exactly the top 30% of the pool by DataComp's CLIP B/32 score.
    rows = pq.read_table(tiny_datacomp["pool_dir"] / "metadata" / "0.parquet").to_pylist()
    rows.sort(key=lambda r: -r["clip_b32_similarity_score"])
    top = {r["uid"] for r in rows[:120]}
    run = tmp_path / "run"
    it = run / "iterations" / "01"
    assert set((it / "selection.txt").read_text().split()) == top
    assert len(hist) == 1 and "CLIP score top 30%" in hist[0]["note"]

    # Scored per DataComp task by clip-benchmark; the average is their plain mean.
    manifest = json.loads((it / "manifest.json").read_text())
    scores = manifest["scores"]
    assert list(scores) == list(TINY_TASKS) and list(base.scores) == list(TINY_TASKS)
    assert manifest["average"] == pytest.approx(np.mean(list(scores.values())), abs=1e-3)
    assert all(0 <= v <= 100 for v in scores.values())
    eval_log = (it / "eval.log").read_text()
    assert "3 of DataComp's 38 tasks (clip_benchmark)" in eval_log and "clip_eval" in eval_log
    assert "with clip-benchmark" in eval_log and "Oxford-IIIT Pet" in eval_log
    assert "torch.distributed.run" in (it / "train.log").read_text()
    # The random-init model is at chance on 12 and 3 classes; training moves the scores.
    assert base.scores["imagenet1k"] < 25 and base.scores["vtab/pets"] < 50
    assert manifest["average"] > base.average + 5  # the filtered subset teaches the model (about +25 here)
    assert json.loads((it / "audit.json").read_text()) is not None
    print(
        f"\ntiny DataComp episode: {wall:.1f}s; base {base.scores} avg {base.average:.2f}; "
        f"clip_score30 {scores} avg {manifest['average']:.2f}; return {summary['return']:+.2f}"
    )
