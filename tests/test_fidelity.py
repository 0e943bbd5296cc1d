"""The fidelity table across world seeds: `curbench baselines --world-seeds`, its JSON, Kendall's tau."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from curbench_env.agents.baselines import kendall_tau

pytest.importorskip("peft")


def test_kendall_tau_reads_agreement_of_two_rankings():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)


def test_baselines_cli_writes_a_row_per_world_seed_and_policy(tiny_world, tmp_path):
    """Two worlds of the tiny preset share its base model; the JSON has one row per (world seed, policy)
    with mean, std and per-benchmark scores, the ranking agreement and each benchmark's spread."""
    out = tmp_path / "table.json"
    home = tiny_world.parent.parent  # $CURBENCH_HOME of the tiny world
    proc = subprocess.run(
        [sys.executable, "-m", "curbench_env.cli", "baselines", "Curation-MiniVQA-v0", "--preset", "tiny",
         "--seeds", "1", "--world-seeds", "0,1", "--policies", "random,top_loss,top_loss_p95", "--no-full",
         "--json", str(out)],
        env={**os.environ, "CURBENCH_HOME": str(home), "CURBENCH_RUNS": str(tmp_path / "runs")},
        capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    got = {(r["world_seed"], r["policy"]) for r in result["rows"]}
    assert got == {(w, p) for w in (0, 1) for p in ("base", "random", "top_loss", "top_loss_p95")}
    for row in result["rows"]:
        assert set(row["scores"]) == {"vqa", "relations", "ocr", "pope", "mme", "mmbench", "count", "grounding"}
        assert row["std"] == 0.0 and 0.0 <= row["mean"] <= 100.0
    assert set(result["kendall_tau"]["pairs"]) == {"0-1"}
    assert set(result["kendall_tau"]["policies"]) == {"random", "top_loss", "top_loss_p95"}
    assert set(result["spread"]) == {"0", "1"}
    assert "world seed 1" in proc.stdout and "Kendall tau" in proc.stdout
    # The two worlds differ (pool and benchmarks), their base model does not.
    worlds = sorted(p for p in (home / "minivqa").iterdir() if (p / "READY").exists()
                    and json.loads((p / "READY").read_text())["preset"]["world"]["pool_size"] == 2_000)
    assert len(worlds) >= 2
    assert len({(w / "base_model" / "model.safetensors").read_bytes() for w in worlds}) == 1
    assert len({(w / "pool" / "pool.json").read_bytes() for w in worlds}) == len(worlds)


def test_top_loss_with_the_p95_noise_filter_beats_plain_top_loss_on_the_small_preset(tmp_path):
    """The loss family's order (the paper's winning composition): within each question type the top of
    the early-training loss is mostly the injected noise, so plain top-loss trains on it and the p95
    filter removes it. On the small preset (the shipped base model, a 4,000-example pool; the tiny
    preset's briefly aligned model learns too little for any order to show), through the terminal as an
    agent submits. Scores are repeatable on a machine kind; the margin at one seed is small on this pool
    (world v7 measured 20.25 vs 18.0 at seed 0, 20.25 vs 19.5 at seed 1), so the test compares two seeds'
    means (the README's table has four world seeds of the default preset with 3 training seeds each)."""
    import gymnasium as gym
    from curbench_env.agents.scripted import SinglePolicyAgent

    from curbench_env.runner import run_episode

    env = gym.make("Curation-MiniVQA-v0", task_kwargs={"preset": "small"}, run_root=tmp_path / "runs",
                   iteration_budget=1, disable_env_checker=True)
    try:
        scores: dict[str, list[float]] = {}
        for policy in ("top_loss", "top_loss_p95"):
            for seed in range(2):
                run_episode(env, SinglePolicyAgent(policy, seed=seed), seed=seed, progress=False)
                scores.setdefault(policy, []).append(env.unwrapped.history[-1]["average"])
    finally:
        env.close()
    mean = {k: sum(v) / len(v) for k, v in scores.items()}
    assert mean["top_loss_p95"] > mean["top_loss"], scores


def test_random_search_draws_a_fresh_random_subset_every_iteration(tiny_world, tmp_path):
    """`random_search` (the paper's best-of-N random): N iterations, N different subsets, the best of them."""
    import gymnasium as gym
    from curbench_env.agents import load_policy

    from curbench_env.runner import run_episode

    env = gym.make("Curation-MiniVQA-v0", task_kwargs={"preset": "tiny"}, run_root=tmp_path / "runs",
                   iteration_budget=3, disable_env_checker=True)
    try:
        summary = run_episode(env, load_policy("scripted:random_search", seed=1), seed=1, progress=False)
        history = env.unwrapped.history
    finally:
        env.close()
    assert [m["iteration"] for m in history] == [1, 2, 3]
    assert len({m["content_hash"] for m in history}) == 3
    assert summary["best_score"] == max(m["average"] for m in history)


def _curator_session(score, budget: int, history: list[dict] = ()) -> list[str]:
    """The submit commands of a curator session whose submissions score ``score(command)`` (resumed after
    the recorded ``history``, as ``info["history"]`` gives it)."""
    from curbench_env.agents.scripted import CuratorAgent

    agent = CuratorAgent(seed=0)
    info = {"submission_budget": 1000, "pool_kind": "conversations", "budget_left": budget - len(history),
            "iteration": len(history), "history": list(history)}
    agent.reset({}, info)
    submits: list[str] = []
    sub = None
    for _ in range(10 * budget):
        cmd = agent.act({}, {**info, "submission": sub})
        if cmd == "done":
            break
        sub = None
        if "&& submit " in cmd:
            submits.append(cmd)
            sub = {"status": "scored", "average": score(cmd)}
            info = {**info, "budget_left": info["budget_left"] - 1}
    return submits


def test_the_curator_refines_its_best_configuration_while_iterations_are_left():
    """After its ten-policy plan the curator moves one knob of the best-scored configuration at a time,
    never repeats a configuration, and stops when the budget is spent."""
    def score(cmd: str) -> float:  # benchmark_formats scores best, and lower noise percentiles score higher
        pct = re.search(r"--noise-pct (\d+)", cmd)
        return (40.0 if "--formats benchmark" in cmd else 20.0) + ((100 - float(pct[1])) / 10 if pct else 0.0)

    submits = _curator_session(score, 16)
    assert len(submits) == 16 and len(set(submits)) == 16
    refinements = submits[10:]
    assert all("--formats benchmark" in c for c in refinements), refinements
    assert "--noise-pct 50" in refinements[0] and "--noise-pct 40" in " ".join(refinements[1:])


def test_a_curator_whose_best_policy_has_no_knobs_draws_it_once_then_refines_the_next():
    submits = _curator_session(lambda c: 50.0 if "source_balanced.py" in c and "--drop-text" not in c else 30.0, 13)
    refinements = submits[10:]
    assert "source_balanced.py" in refinements[0] and "--seed 1001" in refinements[0]
    # the draw scores as well as the original: both are the best, neither gets a second draw
    assert not any("source_balanced.py" in c and "--drop-text" not in c for c in refinements[1:]), refinements
    assert len(set(submits)) == len(submits) == 13


def test_a_resumed_curator_goes_on_refining_from_the_recorded_scores():
    """Resumed after 12 of 16 iterations, the curator reads what it scored from ``info["history"]`` and
    submits what the uninterrupted session would have."""
    def score(cmd: str) -> float:
        pct = re.search(r"--noise-pct (\d+)", cmd)
        return (40.0 if "--formats benchmark" in cmd else 20.0) + ((100 - float(pct[1])) / 10 if pct else 0.0)

    whole = _curator_session(score, 16)

    def recorded(k: int, cmd: str) -> dict:
        words = shlex.split(cmd.split("&& submit ", 1)[1])
        return {"iteration": k + 1, "file": words[0], "note": words[words.index("--note") + 1], "average": score(cmd)}

    history = [recorded(k, c) for k, c in enumerate(whole[:12])]
    assert _curator_session(score, 16, history) == whole[12:]


def test_the_curators_knob_defaults_are_the_scripts_defaults():
    from curbench_env.agents.scripted import KNOBS, script_text

    for script, knobs in KNOBS.items():
        text = script_text(script)
        for knob, (values, default) in knobs.items():
            m = re.search(rf'"{knob}": {{[^}}]*"default": "?([^",}}]+)"?', text)
            assert m and float(m[1]) == float(default) if knob != "--order" else m[1] == default, (script, knob)
            assert default in values



def test_the_loss_policies_rank_within_one_question_type_of_one_source():
    """``type_of`` (the loss policies' unit of comparison) ignores case and spacing, so a lightly edited
    near duplicate ranks with its original instead of forming a small type of its own that the balanced
    fill takes whole; and it separates one-question records from multi-question ones (a record's loss
    averages over its answers), so single yes/no questions are not outranked by the multi-turn records
    that open with the same question."""
    import importlib.util

    import curbench_env.agents.scripts as scripts

    spec = importlib.util.spec_from_file_location("_common", Path(scripts.__path__[0]) / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)

    def rec(*turns: str, image: str = "coco/1.png") -> dict:
        conv = []
        for k, q in enumerate(turns):
            conv += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": "yes"}]
        return {"id": "x", "image": image, "conversations": conv}

    yes_no = "Is there a shape at the top left?\nPlease answer yes or no."
    region = "Provide a short description for this region: [0.0, 0.0, 0.5, 0.5]"
    assert common.type_of(rec(yes_no)) == common.type_of(rec(yes_no.replace(" ", "  ", 1)))
    assert common.type_of(rec(region, image="vg/1.png")) == common.type_of(rec("p" + region[1:], image="vg/1.png"))
    assert common.type_of(rec(yes_no)) != common.type_of(rec(yes_no, "What shape is at the top right?"))
    assert common.type_of(rec(yes_no)) != common.type_of(rec(yes_no, image="gqa/1.png"))


def test_the_format_mix_drops_repeated_records_not_repeated_questions(tmp_path):
    """The quality mix's exact-duplicate filter keys on the picture and the text: short-answer records
    repeat their text across pictures ("How many shapes are there? 3"), and keying on the image folder
    instead dropped all but a few dozen counting, yes/no and multiple-choice records (benchmark_formats
    picked 18 counting and 13 yes/no records of world 0's 1,000 before; 48 and 150 after)."""
    import curbench_env.agents.scripts as scripts
    import numpy as np

    ask = "<image>\nHow many shapes are there?\nAnswer the question using a single word or phrase."
    pool = [{"id": f"c{k}", "image": f"coco/train2017/{k}.png",
             "conversations": [{"from": "human", "value": ask}, {"from": "gpt", "value": "3"}]} for k in range(10)]
    pool.append(dict(pool[4], id="dup"))  # a repeat: the same picture, the same text
    (tmp_path / "signals").mkdir()
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    (tmp_path / "signals" / "ids.json").write_text(json.dumps([r["id"] for r in pool]))
    np.save(tmp_path / "signals" / "loss.npy", np.linspace(1.0, 2.0, len(pool)).astype(np.float32))
    np.save(tmp_path / "signals" / "image_emb.npy", np.random.default_rng(0).normal(size=(len(pool), 4)).astype(np.float32))
    out = tmp_path / "picks.txt"
    proc = subprocess.run([sys.executable, str(Path(scripts.__path__[0]) / "quality_mix.py"), "--formats", "benchmark",
                           "--noise-pct", "100", "--odd-pct", "100", "--budget", "50", "--out", str(out)],
                          env={**os.environ, "POOL": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(out.read_text().split()) == sorted(r["id"] for r in pool[:10])
