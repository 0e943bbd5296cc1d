"""CurationEnv: the Gymnasium contract, rewards, episode end, trajectories and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from curbench_env import CurationEnv
from curbench_env.trajectory import RunDirectory
from curbench_env.workspace.base import bwrap_available

GOOD = "python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; " \
       "print('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' and r['id']!='leak01'][:{n}]))\" > {f}"


def pick(n: int, f: str = "picks.txt") -> str:
    return GOOD.format(n=n, f=f)


def test_check_env_passes(make_env):
    env = make_env(backend="bwrap" if bwrap_available() else "local")
    # check_env steps a sampled action twice and compares the outputs. A random string is a random
    # shell program (it may background a job and race), so give it a fixed, valid command instead.
    env.action_space.sample = lambda mask=None: "echo checked; ls"
    check_env(env, skip_render_check=False)


def test_reset_observation_is_the_task_readme_and_in_the_space(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    assert "Tiny task" in obs["output"] and env.observation_space.contains(obs)
    assert info["base_score"] == 15.0 and info["budget_left"] == 3


def test_plain_command_gives_zero_reward_and_output(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, reward, term, trunc, _ = env.step("echo héllo wörld; printf 'a\\tb\\r\\n'")
    assert reward == 0.0 and not term and not trunc
    assert "hello world" in obs["output"] and "a\tb" in obs["output"]
    assert env.observation_space.contains(obs)


def test_scored_submission_reports_scores_and_best_reward(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(pick(10) + " && submit picks.txt --note 'clean ones'")
    assert info["submission"]["status"] == "scored" and info["iteration"] == 1
    assert set(info["scores"]) == {"alpha", "beta"}
    assert reward == pytest.approx(info["average"] - 15.0)
    assert "alpha" in obs["output"] and "reward" in obs["output"]
    # A worse submission in `best` mode earns nothing.
    _, reward2, _, _, info2 = env.step("head -3 picks.txt > few.txt && submit few.txt")
    assert info2["average"] < info["average"] and reward2 == 0.0


@pytest.mark.parametrize("mode", ["previous", "base"])
def test_reward_modes(make_env, mode):
    env = make_env(reward_mode=mode)
    env.reset(seed=0)
    _, r1, _, _, i1 = env.step(pick(10) + " && submit picks.txt")
    _, r2, _, _, i2 = env.step("head -3 picks.txt > few.txt && submit few.txt")
    if mode == "previous":
        assert r1 == pytest.approx(i1["average"] - 15.0) and r2 == pytest.approx(i2["average"] - i1["average"])
    else:
        assert r2 == pytest.approx(i2["average"] - 15.0)


def test_refused_submission_spends_no_iteration(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, reward, _, _, info = env.step("echo ghost > bad.txt; submit bad.txt")
    assert info["submission"]["status"] == "refused" and info["iteration"] == 0 and reward == 0
    assert "unknown id 'ghost'" in obs["output"] and "no iteration spent" in obs["output"]


def test_a_contaminated_submission_spends_its_iteration_and_names_no_id(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, reward, _, _, info = env.step("echo leak01 > l.txt; echo ex0002 >> l.txt; submit l.txt")
    assert info["submission"]["status"] == "contaminated" and reward == 0
    assert info["iteration"] == 1 and info["budget_left"] == 2 and info["best_score"] == 15.0
    assert "1 of 2" in obs["output"] and "leak01" not in obs["output"] and "leak01" not in json.dumps(info)


def test_a_contaminated_submission_is_a_free_refusal_when_configured(make_env):
    env = make_env(contamination_spends_iteration=False)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("echo leak01 > l.txt; submit l.txt")
    assert info["submission"]["status"] == "refused" and info["iteration"] == 0 and "leak01" not in obs["output"]


def test_resume_counts_an_iteration_spent_on_contamination(make_env, tiny_task):
    env = make_env(iteration_budget=3)
    env.reset(seed=0)
    env.step("echo leak01 > l.txt; submit l.txt")
    env.step(pick(6) + " && submit picks.txt")
    run_dir = env.run_dir
    env.close()
    env2 = CurationEnv(tiny_task, backend="local", workspace_kwargs={"warn": False}, resume_from=run_dir)
    _, info = env2.reset()
    assert info["iteration"] == 2 and info["budget_left"] == 1
    _, _, _, _, info = env2.step(pick(7, "q.txt") + " && submit q.txt")
    assert info["submission"]["iteration"] == 3
    env2.close()


def test_crashed_training_keeps_the_episode(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, term, _, info = env.step("echo boom > b.txt; submit b.txt")
    assert info["submission"]["status"] == "crashed" and not term and info["iteration"] == 0
    assert (env.run_dir / "work").exists()
    _, _, _, _, info = env.step(pick(5) + " && submit picks.txt")
    assert info["iteration"] == 1


def test_same_selection_is_served_from_the_cache(make_env, tiny_task):
    env = make_env()
    env.reset(seed=0)
    env.step(pick(10) + " && submit picks.txt")
    runs = tiny_task.pipeline.runs
    obs, _, _, _, info = env.step("sort -r picks.txt > again.txt && submit again.txt")
    assert tiny_task.pipeline.runs == runs and info["submission"]["cached"] and "cached result" in obs["output"]


def test_only_one_submission_per_command(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(pick(4) + " && submit picks.txt && submit picks.txt")
    assert info["iteration"] == 1 and "one submission per command" in obs["output"]


def test_budget_spent_terminates(make_env):
    env = make_env(iteration_budget=2)
    env.reset(seed=0)
    env.step(pick(4) + " && submit picks.txt")
    _, _, term, trunc, _ = env.step(pick(6) + " && submit picks.txt")
    assert term and not trunc
    with pytest.raises(gym.error.ResetNeeded):
        env.step("ls")


def test_done_terminates(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, term, _, _ = env.step("done")
    assert term and "ended by the agent" in obs["output"]


def test_step_limit_truncates(make_env):
    env = make_env(max_steps=2)
    env.reset(seed=0)
    env.step("true")
    _, _, term, trunc, _ = env.step("true")
    assert trunc and not term


def test_wall_clock_limit_truncates(make_env):
    env = make_env(max_wall_clock_s=0.01)
    env.reset(seed=0)
    import time

    time.sleep(0.05)
    _, _, _, trunc, _ = env.step("true")
    assert trunc


def test_output_is_capped_to_the_observation(make_env):
    env = make_env(observation_chars=2000)
    env.reset(seed=0)
    obs, *_ = env.step("seq 1 100000")
    assert len(obs["output"]) <= 2000 and "truncated" in obs["output"]
    assert env.observation_space.contains(obs)


def test_render_ansi_shows_the_last_step(make_env):
    env = make_env(render_mode="ansi")
    env.reset(seed=0)
    env.step("echo rendered")
    assert env.render().startswith("$ echo rendered")


def test_run_directory_records_everything(make_env):
    env = make_env()
    env.reset(seed=0)
    env.step(pick(8) + " && cp picks.txt select_notes.md && submit picks.txt --note 'take good ones'")
    run = RunDirectory(env.run_dir)
    steps = run.steps()
    assert [s["kind"] for s in steps] == ["reset", "command"]
    it = run.root / "iterations" / "01"
    for name in ("manifest.json", "selection.txt", "audit.json", "train.log", "eval.log", "scores.json"):
        assert (it / name).exists(), name
    manifest = json.loads((it / "manifest.json").read_text())
    assert manifest["note"] == "take good ones" and len(manifest["commit"]) == 40
    assert "select_notes.md" in manifest["policy_files"]
    log = subprocess.run(["git", f"--git-dir={run.git_dir}", "log", "--oneline"], capture_output=True, text=True)
    assert "iteration 1" in log.stdout


def test_kill_9_mid_episode_leaves_a_readable_run(tmp_path):
    from tinytask import run_then_kill

    run_then_kill(tmp_path / "task", tmp_path / "run", ["echo one", "echo two"])
    steps = RunDirectory(tmp_path / "run").steps()
    assert [s.get("action") for s in steps[1:]] == ["echo one", "echo two"]


def test_resume_continues_an_interrupted_episode(make_env, tiny_task, tmp_path):
    env = make_env(iteration_budget=3)
    assert env.reset(seed=0)[1]["history"] == []
    env.step(pick(6) + " && submit picks.txt")
    env.step("echo keep > note.txt")
    run_dir = env.run_dir
    env.close()  # the harness went away
    env2 = CurationEnv(tiny_task, backend="local", workspace_kwargs={"warn": False}, iteration_budget=3,
                       resume_from=run_dir)
    obs, info2 = env2.reset()
    assert "resumed" in obs["output"] and info2["iteration"] == 1 and info2["steps"] == 2
    # what was scored before, for the agent: in the observation and as info["history"]
    [earlier] = info2["history"]
    assert earlier["iteration"] == 1 and Path(earlier["file"]).name == "picks.txt" and earlier["average"] == info2["best_score"]
    assert f"Scored so far:\n  iteration 1: {earlier['file']}  average" in obs["output"]
    obs, _, _, _, info3 = env2.step("cat note.txt")
    assert obs["output"].strip() == "keep" and info3["steps"] == 3
    env2.close()
    assert [s["kind"] for s in RunDirectory(Path(run_dir)).steps()].count("resume") == 1


def _tiny_env_fn(root: str):
    def make():
        sys.path.insert(0, str(Path(__file__).parent))
        from tinytask import TinyTask

        return CurationEnv(TinyTask(root), backend="local", workspace_kwargs={"warn": False},
                           run_root=os.path.join(root, "runs"))

    return make


def test_async_vector_env_resets_and_steps(tmp_path):
    envs = gym.vector.AsyncVectorEnv([_tiny_env_fn(str(tmp_path / f"t{k}")) for k in range(2)], shared_memory=False)
    try:
        obs, _ = envs.reset(seed=[0, 1])
        assert all("Tiny task" in o for o in obs["output"])
        obs, rewards, term, trunc, _ = envs.step(("echo a", "echo b"))
        assert [o.strip() for o in obs["output"]] == ["a", "b"]
        assert np.all(rewards == 0)
    finally:
        envs.close()


def test_non_string_action_is_a_clear_error(make_env):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="one shell command"):
        env.step(42)


def test_step_before_reset_is_a_clear_error(make_env):
    env = make_env()
    with pytest.raises(gym.error.ResetNeeded):
        env.step("ls")


def test_cli_resume_after_kill_keeps_every_setting_and_continues_the_scores(tmp_path):
    tests_dir = str(Path(__file__).parent)
    run_dir, task_root = tmp_path / "run", tmp_path / "task"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {tests_dir!r})
        from curbench_env import CurationEnv
        from resume_agent import PICK
        env = CurationEnv("tinytask:TinyTask", {{"root": {str(task_root)!r}}}, backend="local",
                          workspace_kwargs={{"warn": False}}, run_dir={str(run_dir)!r}, iteration_budget=5,
                          max_steps=6, max_wall_clock_s=3600, observation_chars=900, reward_mode="previous",
                          limits={{"command_timeout_s": 30, "max_processes": 128}})
        env.reset(seed=3)
        env.step(PICK.format(n=8, f="a.txt") + " && submit a.txt")
        env.step("python3 -c \\"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
                 "open('b.txt','w').write(chr(10).join([r['id'] for r in rs if r['quality_hint']=='bad' "
                 "and r['id']!='boom'][:6]))\\" && submit b.txt")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    config_before = (run_dir / "config.json").read_text()
    before = RunDirectory(run_dir)
    first, second = before.iterations()
    assert first["average"] > second["average"]  # best stays with iteration 1, last is iteration 2

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])}
    cli = subprocess.run([sys.executable, "-m", "curbench_env.cli", "resume", str(run_dir),
                          "--agent", "resume_agent:ResumeAgent"], capture_output=True, text=True, timeout=300, env=env)
    assert cli.returncode == 0, cli.stderr + cli.stdout
    assert (run_dir / "config.json").read_text() == config_before
    steps = RunDirectory(run_dir).steps()
    resume = next(s for s in steps if s["kind"] == "resume")
    assert resume["episode"] == json.loads(config_before)["episode"]
    assert resume["episode"]["limits"]["command_timeout_s"] == 30 and resume["episode"]["backend"] == "local"
    assert resume["elapsed_s"] >= max(s.get("elapsed_s", 0) for s in steps[: steps.index(resume)])
    after = [s for s in steps if s.get("kind") == "command" and s["step"] > resume["step"]]
    assert [s["step"] for s in after] == [3, 4, 5, 6]  # step numbers continue; max_steps=6 still holds
    assert after[-1]["truncated"] and "Step limit reached (6 steps)" in after[-1]["output"]
    third = RunDirectory(run_dir).iterations()[2]
    assert third["iteration"] == 3 and third["step"] == 3
    assert after[0]["reward"] == pytest.approx(third["average"] - second["average"])  # reward_mode "previous"
    assert third["best_score"] == pytest.approx(max(first["average"], third["average"]))
    assert len(after[1]["output"]) <= 900 and "truncated" in after[1]["output"]  # observation_chars
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["steps"] == 6


def test_a_run_directory_from_before_the_episode_core_resumes(make_env, tiny_task):
    env = make_env(iteration_budget=3)
    env.reset(seed=0)
    env.step(pick(6) + " && submit picks.txt")
    run_dir = env.run_dir
    env.close()
    # The earlier layout: no scaffolds/agent keys in config.json, no elapsed_s in the steps.
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("scaffolds", "agent"):
        config.pop(key)
    (run_dir / "config.json").write_text(json.dumps(config))
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    (run_dir / "steps.jsonl").write_text("".join(json.dumps({k: v for k, v in s.items() if k != "elapsed_s"}) + "\n"
                                                 for s in steps))
    env2 = CurationEnv(tiny_task, backend="local", workspace_kwargs={"warn": False}, resume_from=run_dir)
    obs, info = env2.reset()
    assert info["iteration"] == 1 and info["budget_left"] == 2 and "resumed" in obs["output"]
    env2.close()
