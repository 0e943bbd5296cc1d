"""The rewriting setting: the `rewrite` program, its budget, its backends, its audit and the MiniVQA simulated MLLM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fake_openai_chat import FakeChatServer
from tinytask import EVAL_TEXT, TinyTask

from curbench_env.rewrite import RewriteJob, RewriteOutput, RewriteSetting, parse_conversations, render_prompt
from curbench_env.rewriters import LiteLLMRewriter


class UpperRewriter:
    """A deterministic rewriter for the harness tests: upper-cases every answer."""

    name = "upper"

    def __init__(self) -> None:
        self.calls = 0

    def rewrite(self, jobs: list[RewriteJob]) -> list[RewriteOutput]:
        self.calls += 1
        return [RewriteOutput(id=j.id, conversations=[
            {**t, "value": t["value"].upper() if t["from"] == "gpt" else t["value"]}
            for t in j.record["conversations"]]) for j in jobs]


class RewriteTinyTask(TinyTask):
    """The tiny task with a rewriting tool (and a real PNG picture per record)."""

    def __init__(self, root: str, make_rewriter, budget: int = 5) -> None:
        super().__init__(root)
        self.make_rewriter, self.rewrite_budget = make_rewriter, budget

    def prepare(self) -> None:
        super().prepare()
        from PIL import Image

        for rec in self._records.values():
            path = self.pool_dir / rec["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(path)

    def rewrite_setting(self) -> RewriteSetting:
        return RewriteSetting(budget=self.rewrite_budget, make_rewriter=self.make_rewriter, rewriter_name="test",
                              image_of=lambda rec: self.pool_dir / rec["image"])


@pytest.fixture
def rewriter() -> UpperRewriter:
    return UpperRewriter()


@pytest.fixture
def rw_env(make_env, tmp_path, rewriter):
    def factory(budget: int = 5, make=None):
        env = make_env(task=RewriteTinyTask(str(tmp_path / "rwtiny"), make or (lambda: rewriter), budget))
        env.reset(seed=0)
        return env
    return factory


def left(info: dict) -> int:
    return info["rewrite_budget_left"]


def test_rewrite_help_and_usage_are_on_the_path(rw_env):
    env = rw_env()
    obs, *_ = env.step("rewrite --help")
    assert "rewrite IDS_FILE --prompt TEXT [--out FILE]" in obs["output"]
    assert int(obs["exit_code"]) == 0


def test_rewrite_writes_the_records_and_spends_the_budget(rw_env):
    env = rw_env(budget=5)
    env.step("printf 'ex0001\\nex0002\\nex0003\\n' > ids.txt")
    obs, _, _, _, info = env.step("rewrite ids.txt --prompt 'Fix: {question} -> {answer}' --out rw/out.jsonl")
    assert "3 records written to rw/out.jsonl" in obs["output"] and "2 of 5 rewrite budget left" in obs["output"]
    assert left(info) == 2 and info["rewrite_spent"] == 3 and info["rewrite_calls"] == 1
    recs = [json.loads(line) for line in (env.run_dir / "workspace" / "rw" / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == ["ex0001", "ex0002", "ex0003"]
    assert recs[0]["conversations"][1]["value"] == "A1" and recs[0]["quality_hint"]  # upper-cased; fields kept
    # Recorded: the call and, per record, the rendered prompt.
    call = json.loads((env.run_dir / "rewrites" / "calls.jsonl").read_text())
    assert call["n"] == 3 and call["prompt"].startswith("Fix:")
    per = [json.loads(line) for line in (env.run_dir / "rewrites" / "001.jsonl").read_text().splitlines()]
    assert per[0]["prompt"] == "Fix: Q1? -> A1"
    step = env.recorder.run.steps()[-1]
    assert step["rewrite"]["status"] == "done" and step["rewrite"]["budget_left"] == 2


def test_rewrite_budget_is_enforced(rw_env, rewriter):
    env = rw_env(budget=4)
    env.step("printf 'ex0001\\nex0002\\nex0003\\n' > ids.txt")
    env.step("rewrite ids.txt --prompt p")
    obs, _, _, _, info = env.step("rewrite ids.txt --prompt p")
    assert "refused (nothing spent; 1 of 4 rewrite budget left)" in obs["output"]
    assert "3 examples asked" in obs["output"] and left(info) == 1 and rewriter.calls == 1


@pytest.mark.parametrize("setup, command, reason", [
    ("echo nobody > ids.txt", "rewrite ids.txt --prompt p", "unknown id"),
    (": > ids.txt", "rewrite ids.txt --prompt p", "lists no ids"),
    ("echo ex0001 > ids.txt", "rewrite ids.txt --prompt '   '", "non-empty --prompt"),
    ("echo ex0001 > ids.txt", "rewrite ids.txt --prompt p --out /etc/passwd", "outside the workspace"),
    ("echo ex0001 > ids.txt && ln -s /etc out", "rewrite ids.txt --prompt p --out out/x.jsonl", "outside the workspace"),
    ("echo ex0001 > ids.txt", "rewrite ids.txt --prompt p --out .curbench/x", "must name a file"),
    ("ln -s /etc/hostname ids.txt", "rewrite ids.txt --prompt p", "outside the workspace"),
])
def test_a_refused_rewrite_spends_nothing(rw_env, rewriter, setup, command, reason):
    env = rw_env(budget=5)
    env.step(setup)
    obs, _, _, _, info = env.step(command)
    assert reason in obs["output"]
    assert left(info) == 5 and info["rewrite_spent"] == 0 and rewriter.calls == 0


def test_a_forged_request_is_refused_and_spends_nothing(rw_env, rewriter):
    env = rw_env()
    obs, _, _, _, info = env.step("mkdir -p .curbench/rewrite-outbox && echo '{\"ids\": 5, \"prompt\": []}' "
                                  "> .curbench/rewrite-outbox/1.json")
    assert "rewrite refused (nothing spent)" in obs["output"] and left(info) == 5 and rewriter.calls == 0


def test_an_unreachable_rewriter_spends_nothing(rw_env):
    env = rw_env(make=lambda: LiteLLMRewriter("openai/none", api_base="http://127.0.0.1:9/v1", timeout_s=2))
    env.step("echo ex0001 > ids.txt")
    obs, _, _, _, info = env.step("rewrite ids.txt --prompt p")
    assert "the rewriter failed" in obs["output"] and left(info) == 5


def test_rewrite_budget_survives_resume(rw_env, tiny_task):
    from curbench_env import CurationEnv

    env = rw_env(budget=5)
    env.step("printf 'ex0001\\nex0002\\n' > ids.txt && rewrite ids.txt --prompt p")
    root, task = env.run_dir, env.task
    env.close()
    again = CurationEnv(task, backend="local", workspace_kwargs={"warn": False}, resume_from=root)
    try:
        _, info = again.reset()
        assert left(info) == 3
    finally:
        again.close()


def test_status_of_the_episode_server_shows_the_rewrite_budget(rw_env):
    session_mod = pytest.importorskip("curbench_env.session")
    env = rw_env(budget=5)
    session = session_mod.EpisodeSession(env, seed=0)
    session.info = env._info()
    session.ready.set()
    assert session.status()["rewrite_budget_left"] == 5


# -- the litellm backend against a local OpenAI-compatible server -----------------------------------
def _reply_with(conv: list[dict]) -> callable:
    return lambda request: "Here it is:\n```json\n" + json.dumps(conv) + "\n```"


def test_litellm_rewriter_sends_the_picture_and_parses_the_reply(tmp_path):
    from PIL import Image

    img = tmp_path / "pic.png"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(img)
    record = {"id": "a", "image": "pic.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                                {"from": "gpt", "value": "thing"}]}
    new = [{"from": "human", "value": "What is it?"}, {"from": "gpt", "value": "a black square"}]
    with FakeChatServer(_reply_with(new)) as srv:
        rw = LiteLLMRewriter("openai/fake-vl", api_base=srv.api_base, api_key="x", workers=1)
        job = RewriteJob(id="a", record=record, prompt=render_prompt("Improve {answer} for {question}", record), image=img)
        (out,) = rw.rewrite([job])
    assert out.error is None
    assert out.conversations[0]["value"] == "<image>\nWhat is it?"  # the placeholder is kept
    assert out.conversations[1]["value"] == "a black square" and out.prompt_tokens == 100
    (request,) = srv.requests
    parts = request["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "Improve thing for What?"}
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_litellm_rewriter_through_the_env(rw_env):
    new = [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "rewritten"}]
    with FakeChatServer(_reply_with(new)) as srv:
        env = rw_env(make=lambda: LiteLLMRewriter("openai/fake-vl", api_base=srv.api_base, api_key="x"))
        env.step("echo ex0004 > ids.txt")
        obs, _, _, _, info = env.step("rewrite ids.txt --prompt 'Rewrite {turns}' --out r.jsonl")
        assert "1 records written to r.jsonl" in obs["output"], obs["output"]
        assert srv.requests[0]["messages"][-1]["content"][1]["type"] == "image_url"
    obs, *_ = env.step("submit r.jsonl")
    assert "audit: clean" in obs["output"]
    assert (env.run_dir / "iterations" / "01" / "rewrites.jsonl").exists()


def test_malformed_model_output_is_a_failed_record_not_a_crash():
    with pytest.raises(ValueError):
        parse_conversations("I cannot help with that.", {"conversations": []})
    with pytest.raises(ValueError):
        parse_conversations('[{"from": "gpt", "value": "x"}]', {"conversations": []})


def test_prompt_templates_fill_only_record_fields():
    rec = {"id": "x", "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
    assert render_prompt("{id}:{question}:{answer}:{__class__}:{0}", rec) == "x:q:a:{__class__}:{0}"


# -- the leakage audit ------------------------------------------------------------------------------
def test_a_rewrite_that_copies_an_eval_answer_is_withheld(rw_env):
    q, a = EVAL_TEXT.split("\n")
    leak = [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}]
    with FakeChatServer(_reply_with(leak)) as srv:
        env = rw_env(make=lambda: LiteLLMRewriter("openai/fake-vl", api_base=srv.api_base, api_key="x"))
        env.step("echo ex0004 > ids.txt")
        obs, _, _, _, info = env.step("rewrite ids.txt --prompt p --out r.jsonl")
    assert "evaluation data" in obs["output"] and not (env.run_dir / "workspace" / "r.jsonl").exists()
    assert left(info) == 4  # the call reached the model: its example is spent
    assert json.loads((env.run_dir / "rewrites" / "calls.jsonl").read_text())["withheld"] is True


def test_a_submitted_rewrite_that_copies_an_eval_answer_is_refused(rw_env):
    env = rw_env()
    env.step("echo ex0004 > ids.txt && rewrite ids.txt --prompt p --out r.jsonl")
    q, a = EVAL_TEXT.split("\n")
    env.step("python3 - <<'EOF'\nimport json\nr = json.loads(open('r.jsonl').readline())\n"
             f"r['conversations'] = [{{'from': 'human', 'value': {q!r}}}, {{'from': 'gpt', 'value': {a!r}}}]\n"
             "open('r.jsonl', 'w').write(json.dumps(r) + '\\n')\nEOF")
    obs, reward, _, _, info = env.step("submit r.jsonl")
    assert "contaminated" in obs["output"] and reward == 0.0 and info["submission"]["status"] == "contaminated"


# -- the registered ids ------------------------------------------------------------------------------
def test_minivqa_rewrite_id_runs_the_tiny_preset(tiny_world, tmp_path):
    import gymnasium as gym

    from curbench_env.registry import task_kwargs_for

    env = gym.make("Curation-MiniVQA-Rewrite-v0", task_kwargs=task_kwargs_for("Curation-MiniVQA-Rewrite-v0",
                   {"preset": "tiny"}), backend="local", workspace_kwargs={"warn": False}, run_root=tmp_path,
                   disable_env_checker=True)
    try:
        obs, info = env.reset(seed=0)
        assert info["budget_left"] == 20 and info["rewrite_budget_left"] == 400 and info["rewriter"] == "sim"
        assert "Rewriting tool" in obs["output"]
        env.step("python3 -c \"import json; print('\\n'.join(r['id'] for r in json.load(open('$POOL/pool.json'))[:30]))\""
                 " > ids.txt")
        obs, _, _, _, info = env.step("rewrite ids.txt --prompt 'Answer from the picture: {turns}'")
        assert "30 records written to rewrites/rewrite-001.jsonl" in obs["output"] and info["rewrite_budget_left"] == 370
    finally:
        env.close()


def test_the_rewriting_baseline_plays_the_tiny_preset(tiny_world, tmp_path):
    """RewriteNoisyAgent: a top-loss selection, then the same ids with their loss-noisy and off-format examples
    rewritten by the simulated MLLM, both scored (the README's rewriting table is this, on the default world)."""
    import gymnasium as gym
    from curbench_env.agents.scripted import RewriteNoisyAgent

    from curbench_env.registry import task_kwargs_for
    from curbench_env.runner import run_episode
    from curbench_env.trajectory import RunDirectory

    env = gym.make("Curation-MiniVQA-Rewrite-v0", task_kwargs=task_kwargs_for("Curation-MiniVQA-Rewrite-v0",
                   {"preset": "tiny"}), backend="local", workspace_kwargs={"warn": False}, run_root=tmp_path,
                   iteration_budget=3, disable_env_checker=True)
    try:
        summary = run_episode(env, RewriteNoisyAgent(), seed=0, progress=False)
    finally:
        env.close()
    run = RunDirectory.existing(Path(summary["run_dir"]))
    first, second = run.iterations()
    assert first["rewrites"] == 0 and 0 < second["rewrites"] <= 400
    assert "top-loss" in first["note"] and "rewritten by the MLLM tool" in second["note"]
    same = [(run.iteration_dir(k) / "selection.txt").read_text() for k in (1, 2)]
    assert same[0] == same[1] and first["content_hash"] != second["content_hash"]


def test_llava_rewrite_id_without_a_rewriter_fails_at_reset_saying_so(tmp_path, monkeypatch):
    import gymnasium as gym

    from curbench_env.errors import TaskUnavailable

    monkeypatch.delenv("CURBENCH_REWRITER", raising=False)
    env = gym.make("Curation-LLaVA10k-Rewrite-v0", backend="local", run_root=tmp_path, disable_env_checker=True)
    with pytest.raises(TaskUnavailable, match="rewriter=litellm:MODEL"):
        env.reset(seed=0)
    env.close()


# -- the simulated MLLM of MiniVQA ------------------------------------------------------------------
def _world(tiny_world: Path):
    pool = json.loads((tiny_world / "pool" / "pool.json").read_text())
    truth = {t["id"]: t for t in map(json.loads, (tiny_world / "hidden" / "ground_truth.jsonl").read_text().splitlines())}
    return pool, truth


def test_simulated_mllm_reads_clean_pictures(tiny_world):
    from curbench_env.envs.minivqa.rewriter import perceive

    pool, truth = _world(tiny_world)
    images = np.load(tiny_world / "pool" / "images.npy")
    index = json.loads((tiny_world / "pool" / "image_index.json").read_text())
    clean = [r for r in pool if "image" in r and not set(truth[r["id"]]["defects"]) & {"image_mismatch", "corrupt_image"}]
    seen = [perceive(images[index[r["image"]]]) for r in clean]
    right = sum(s is not None and s.caption() == truth[r["id"]]["caption"] for s, r in zip(seen, clean, strict=True))
    assert right / len(clean) > 0.98


def test_simulated_mllm_fixes_wrong_answers_and_makes_its_own_mistakes(tiny_world):
    from curbench_env.envs.minivqa.rewriter import SimulatedMLLM

    pool, truth = _world(tiny_world)
    wrong = [r for r in pool if truth[r["id"]]["defects"] == ["wrong_answer"]]
    clean = [r for r in pool if not truth[r["id"]]["defects"] and "image" in r]
    perfect = SimulatedMLLM(tiny_world / "pool", error_rate=0.0)
    fixed = [o.conversations != r["conversations"] for o, r in
             zip(perfect.rewrite([RewriteJob(r["id"], r, "p") for r in wrong]), wrong, strict=True)]
    assert sum(fixed) / len(wrong) > 0.9
    kept = [o.conversations == r["conversations"] for o, r in
            zip(perfect.rewrite([RewriteJob(r["id"], r, "p") for r in clean]), clean, strict=True)]
    assert all(kept)  # a clean record read right is left as it was
    noisy = SimulatedMLLM(tiny_world / "pool", error_rate=0.3)
    broken = [o.conversations != r["conversations"] for o, r in
              zip(noisy.rewrite([RewriteJob(r["id"], r, "p") for r in clean]), clean, strict=True)]
    assert 0.1 < sum(broken) / len(clean) < 0.9


def test_simulated_mllm_is_not_given_the_hidden_ground_truth(tiny_world, monkeypatch):
    from curbench_env.envs.minivqa.rewriter import SimulatedMLLM

    pool, _ = _world(tiny_world)
    real_open = open

    def guarded(path, *args, **kwargs):
        assert "hidden" not in os.fspath(path), f"the simulated MLLM opened {path}"
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)
    sim = SimulatedMLLM(tiny_world / "pool")
    assert len(sim.rewrite([RewriteJob(r["id"], r, "p") for r in pool[:50]])) == 50


# -- what people read: inspect, report, and the scripted agents -------------------------------------
def test_inspect_and_report_show_the_rewrite_calls(rw_env, tmp_path):
    from typer.testing import CliRunner

    from curbench_env.cli import app
    from curbench_env.report import collect

    env = rw_env(budget=5)
    env.step("printf 'ex0001\\nex0002\\n' > ids.txt && rewrite ids.txt --prompt 'Fix {answer}'")
    env.step("done")
    result = CliRunner().invoke(app, ["inspect", str(env.run_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "rewrite calls" in result.output and "Fix {answer}" in result.output
    (run,) = collect([env.run_dir])
    assert run["rewrites"] == {"calls": 1, "spent": 2, "rewritten": 2, "cost_usd": 0.0}


def test_curator_uses_the_rewrite_tool_only_where_there_is_one():
    from curbench_env.agents.scripted import CuratorAgent

    info = {"submission_budget": 100, "pool_kind": "conversations"}
    plain, with_tool = CuratorAgent(), CuratorAgent()
    plain.reset({}, info)
    with_tool.reset({}, {**info, "rewrite_budget_left": 50})
    assert not any(c.startswith("rewrite ") for c in plain.plan())
    steps = with_tool.plan()
    k = next(n for n, c in enumerate(steps) if c.startswith("rewrite "))
    assert "--budget 50" in steps[k - 1] and "submit " in steps[k + 1]
