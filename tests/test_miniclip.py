"""Curation-MiniCLIP-v0 at the tiny preset: world, DataComp's uid format, training and
clip_benchmark evaluation, the scripted DataComp baselines through the terminal."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("clip_benchmark")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import os

    os.environ["CURBENCH_HOME"] = str(tmp_path_factory.mktemp("clip-home"))
    from curbench_env.envs.miniclip.task import MiniCLIPTask

    task = MiniCLIPTask("tiny")
    task.prepare()
    return task


def test_world_has_datacomp_metadata_noise_and_reference_scores(tiny_clip):
    rows = [json.loads(line) for line in (tiny_clip.pool_dir / "metadata.jsonl").read_text().splitlines()]
    truth = {json.loads(line)["uid"]: json.loads(line)["kind"]
             for line in (tiny_clip.root / "hidden" / "ground_truth.jsonl").read_text().splitlines()}
    assert len(rows) == 600 and all(len(r["uid"]) == 32 and int(r["uid"], 16) >= 0 for r in rows)
    assert {"clean", "mismatch", "spam", "blank"} <= {k.split(":")[-1] for k in truth.values()}
    assert (tiny_clip.pool_dir / "metadata.parquet").exists()
    score = {r["uid"]: r["clip_score"] for r in rows}
    clean = np.mean([score[u] for u, k in truth.items() if k == "clean"])
    noisy = np.mean([score[u] for u, k in truth.items() if k in ("mismatch", "spam")])
    assert clean > noisy  # the reference CLIP separates matched captions from noise
    assert not (tiny_clip.root / "hidden").is_relative_to(tiny_clip.pool_dir)


def test_datacomp_npy_subsets_and_hex_uids_are_accepted(tiny_clip, tmp_path):
    from curbench_env.submission import parse_submission

    uids = tiny_clip.pool.ids[:5]
    arr = np.array(sorted((int(u[:16], 16), int(u[16:], 16)) for u in uids), dtype=np.dtype("u8,u8"))
    np.save(tmp_path / "subset.npy", arr)
    sel = parse_submission(tmp_path / "subset.npy", tiny_clip.rules, tiny_clip.pool)
    assert sorted(sel.ids) == sorted(uids)
    np.save(tmp_path / "hex.npy", np.array(uids))
    assert parse_submission(tmp_path / "hex.npy", tiny_clip.rules, tiny_clip.pool).ids == uids


def test_training_is_deterministic_and_scored_by_clip_benchmark(tiny_clip, tmp_path):
    from curbench_env.submission import Selection

    p = tiny_clip.pipeline
    sel = Selection(ids=tiny_clip.pool.ids[:200])
    a = p.run(sel, tmp_path / "a", seed=0)
    b = p.run(sel, tmp_path / "b", seed=0)
    assert a.scores == b.scores and set(a.scores) == {"zeroshot", "image_retrieval", "text_retrieval"}
    assert 0 <= a.average <= 100 and "samples seen" in a.train_log


@pytest.mark.slow
def test_env_episode_with_the_clip_score_baseline(tmp_path, tiny_clip):
    from curbench_env.agents.scripted import SinglePolicyAgent

    from curbench_env.runner import run_episode

    env = gym.make("Curation-MiniCLIP-v0", task_kwargs={"preset": "tiny"}, backend="local", iteration_budget=1,
                   run_dir=str(tmp_path / "run"), workspace_kwargs={"warn": False})
    summary = run_episode(env, SinglePolicyAgent("clip_score30"), seed=0, progress=False)
    hist = env.unwrapped.history
    assert len(hist) == 1 and "CLIP score top 30%" in hist[0]["note"]
    assert summary["best_score"] >= env.unwrapped.base.average
    env.close()
