"""Trainer front doors: the TRL adapter (and a real GRPOTrainer), the OpenEnv server and client, and
concurrent rollouts with the scoring queue."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest

from curbench_env.registry import ENV_IDS, EnvSpec

TEST_ID = "Curation-TinyTest-v0"


@pytest.fixture
def tiny_env_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The core tests' TinyTask registered as an env id, for the adapters that take ids."""
    kwargs = {"root": str(tmp_path / "tinytask")}
    monkeypatch.setitem(ENV_IDS, TEST_ID, EnvSpec(id=TEST_ID, task="tinytask:TinyTask", description="test",
                                                  task_kwargs=kwargs))
    gym.register(id=TEST_ID, entry_point="curbench_env.env:CurationEnv",
                 kwargs={"task": "tinytask:TinyTask", "task_kwargs": kwargs, "env_id": TEST_ID})
    yield TEST_ID
    gym.registry.pop(TEST_ID, None)


GOOD = "python3 -c \"import json; [print(r['id']) for r in map(json.loads, open('$POOL/pool.jsonl')) " \
       "if r['quality_hint'] == 'good' and r['id'] != 'leak01']\" | head -20 > picks.txt"


def test_trl_adapter_drives_an_episode(tiny_env_id: str) -> None:
    from curbench_env.integrations.trl import CurationTRLEnv
    from curbench_env.session import ToolRefused

    env = CurationTRLEnv()
    brief = env.reset(env_id=tiny_env_id, seed=0, task_args={}, scaffold=None, iteration_budget=2,
                      setup=json.dumps(["mkdir -p notes", "echo ready > notes/x"]), prompt=[{"role": "user"}])
    assert "Tiny task" in brief and env.reward == 0.0
    assert "ready" in env.bash("cat notes/x")
    with pytest.raises(ToolRefused, match="no such file"):
        env.submit("missing.txt")
    assert env.reward == 0.0 and json.loads(env.status())["iteration"] == 0  # a refusal spends nothing
    assert "[exit code 0]" in env.bash(GOOD)
    out = env.submit("picks.txt", "quality_hint == good")
    assert "iteration 1/2" in out
    status = json.loads(env.status())
    assert isinstance(env.reward, float) and env.reward == pytest.approx(status["best_score"] - status["base_score"])
    assert env.reward > 30 and env.get_reward() == env.reward
    run_dir = Path(env.run_dir)
    assert "Episode ended" in env.finish()
    with pytest.raises(ToolRefused, match="ended"):
        env.bash("ls")
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [s["kind"] for s in steps][:3] == ["reset", "command", "command"]  # setup commands are recorded
    assert any((s.get("submission") or {}).get("status") == "scored" for s in steps)

    # the instance is reused by TRL: reset closes the old episode and starts a fresh one
    env.reset(env_id=tiny_env_id, seed=1, reward_mode="final")
    assert env.reward == 0.0 and Path(env.run_dir) != run_dir
    clone = pickle.loads(pickle.dumps(env))  # a live sandbox does not travel; the settings do
    assert clone.reward_mode == "final" and clone.reward == 0.0
    with pytest.raises(ValueError, match="reward_mode"):
        env.reset(env_id=tiny_env_id, reward_mode="nope")


def test_trl_grpo_trainer_runs_with_the_environment_factory(tiny_env_id: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    from curbench_env.integrations.tiny_lm import build_tiny_chat_lm
    from curbench_env.integrations.trl import CurationTRLEnv, rollout_dataset

    model, tok = build_tiny_chat_lm(["bash submit status finish ls head picks.txt $POOL pool.jsonl"] * 20,
                                    vocab_size=400)
    data = rollout_dataset(tiny_env_id, seeds=range(4), iteration_budget=2, max_steps=4)
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=2, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=16, report_to="none", use_cpu=True,
                      save_strategy="no", logging_steps=1)
    trainer = GRPOTrainer(model=model, processing_class=tok, args=args, train_dataset=data,
                          environment_factory=CurationTRLEnv)
    trainer.train()
    assert trainer.state.global_step == 2
    logged = [h for h in trainer.state.log_history if "rewards/CurationTRLEnv/mean" in h]
    assert len(logged) == 2  # the env's reward is a reward source TRL logged at every step
    runs = list(Path(os.environ["CURBENCH_RUNS"]).glob(f"{tiny_env_id}-*"))
    assert len(runs) >= 4  # each rollout is an ordinary recorded episode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openenv_client_against_curbench_serve(tiny_world: Path, tmp_path: Path) -> None:
    pytest.importorskip("openenv")
    from curbench_env.integrations.openenv import CurationAction, CurationEnvClient

    port = _free_port()
    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent), "CURBENCH_RUNS": str(tmp_path / "runs")}
    server = subprocess.Popen(
        [sys.executable, "-m", "curbench_env.cli", "serve", "--openenv", "--env", "Curation-MiniVQA-v0",
         "--preset", "tiny", "--iterations", "2", "--port", str(port), "--max-sessions", "2", "--backend", "local",
         "--run-root", str(tmp_path / "runs")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        with CurationEnvClient(base_url=f"http://127.0.0.1:{port}").sync() as client:
            first = client.reset(seed=0)
            assert "Curation-MiniVQA-v0" in first.observation.output and first.observation.budget_left == 2
            pick = ("python3 -c \"import json; [print(r['id']) for r in json.load(open('$POOL/pool.json'))[:40]]\""
                    " > picks.txt && submit picks.txt --note 'first 40'")
            result = client.step(CurationAction(command=pick))
            sub = result.observation.info["submission"]
            assert sub["status"] == "scored" and result.observation.iteration == 1, result.observation.output
            assert result.reward is not None and not result.done
            state = client.state()
            assert state.iteration == 1 and state.run_dir and Path(state.run_dir, "steps.jsonl").exists()
            refused = client.step(CurationAction(command="submit nothing.txt"))
            assert "no such file" in refused.observation.output and refused.observation.iteration == 1
            end = client.step(CurationAction(command="done"))
            assert end.done
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_concurrent_rollouts_score_identical_subsets_once(tiny_env_id: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURBENCH_HOME", str(tmp_path / "home"))  # an empty result cache: the one training is ours
    from curbench_env.agents.base import Policy

    from curbench_env.integrations.rollouts import run_rollouts
    from curbench_env.registry import load_task, task_kwargs_for
    from curbench_env.runner import make_env

    class Picker:
        def __init__(self) -> None:
            self.plan = iter([GOOD.replace("head -20", "head -17"), "sleep 0.2 && submit picks.txt", "done"])

        def reset(self, obs, info) -> None:  # noqa: ANN001
            pass

        def act(self, obs, info) -> str:  # noqa: ANN001
            return next(self.plan)

    assert isinstance(Picker(), Policy)
    task = load_task("tinytask:TinyTask", **task_kwargs_for(tiny_env_id))
    results = run_rollouts(lambda: make_env(tiny_env_id, backend="local", workspace_kwargs={"warn": False}),
                           lambda seed: Picker(), seeds=[0, 0, 0, 0], concurrency=4)
    assert all(r.error is None for r in results), [r.error for r in results]
    assert {r.iterations for r in results} == {1} and len({r.best_score for r in results}) == 1
    assert task.pipeline.runs == 1  # a GRPO group's identical submissions trained once
    assert len({r.run_dir for r in results}) == 4


def test_scoring_queue_serialises_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from curbench_env.scorer import scoring_slot, scoring_slots

    monkeypatch.setenv("CURBENCH_SCORING_SLOTS", "1")
    assert scoring_slots(8) == 1
    inside, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        with scoring_slot(poll_s=0.01):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    monkeypatch.setenv("CURBENCH_SCORING_SLOTS", "zero")
    with pytest.raises(Exception, match="whole number"):
        scoring_slots()


def test_an_over_long_command_is_refused_with_a_message(make_env) -> None:  # noqa: ANN001
    env = make_env()
    env.reset(seed=0)
    obs, reward, terminated, _, _ = env.step("echo " + "x" * 20_000)
    assert obs["exit_code"] == 2 and "at most 16,384" in obs["output"] and not terminated and reward == 0.0
