"""The real Claude Code and Codex binaries run a 3-iteration MiniVQA episode through `curbench mcp`
against a local fake model server that replays a scripted conversation (no network, no key)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from curbench_env.mcp_server import TOOL_NAMES
from curbench_env.trajectory import RunDirectory

PICK = ("python3 -c \"import json,os; rs=json.load(open(os.environ['POOL']+'/pool.json')); "
        "open('{f}','w').write(chr(10).join(r['id'] for r in rs[{a}:{b}]))\"")

SCRIPT = [
    {"tool": "brief", "args": {}},
    {"tool": "bash", "args": {"command": "pool-stats | head -3"}},
    {"tool": "bash", "args": {"command": PICK.format(f="a.txt", a=0, b=150)}},
    {"tool": "submit", "args": {"path": "a.txt", "note": "first 150 records"}},
    {"tool": "bash", "args": {"command": PICK.format(f="b.txt", a=150, b=300)}},
    {"tool": "submit", "args": {"path": "b.txt", "note": "next 150"}},
    {"tool": "bash", "args": {"command": PICK.format(f="c.txt", a=300, b=500)}},
    {"tool": "submit", "args": {"path": "c.txt", "note": "200 more"}},
    {"text": "Three submissions scored; the budget is spent."},
]


@pytest.mark.slow
@pytest.mark.parametrize("agent,binary", [("claude-code", "claude"), ("codex", "codex")])
def test_curbench_run_with_a_cli_agent_completes_an_episode(agent, binary, tiny_world, tmp_path):
    """`curbench run --agent claude-code|codex`: the real binary, the fake provider, 3 scored iterations."""
    if shutil.which(binary) is None:
        pytest.skip(f"the {binary} CLI is not installed (npm install -g the package)")
    from fake_model_server import FakeModelServer, ScriptedModel

    model = ScriptedModel(SCRIPT, TOOL_NAMES)
    server = FakeModelServer(model)
    run_dir = tmp_path / "run"
    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent), "ANTHROPIC_API_KEY": "fake",
           "OPENAI_API_KEY": "fake"}
    try:
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "run", "--agent", f"{agent}:fake-model",
                              "--env", "Curation-MiniVQA-v0", "--preset", "tiny", "--iterations", "3", "--backend",
                              "local", "--run-dir", str(run_dir), "--agent-base-url", server.url, "--wall-clock", "600"],
                             capture_output=True, text=True, timeout=900, env=env)
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    run = RunDirectory(run_dir)
    assert [m["iteration"] for m in run.iterations()] == [1, 2, 3] and run.steps()[-1]["terminated"]
    assert run.config["agent"] == f"{agent}:fake-model" and model.position == len(SCRIPT)
    usage = json.loads((run_dir / "usage.json").read_text())
    assert usage["agent"] == agent and usage["prompt_tokens"] > 0 and elapsed < 900
    assert (run_dir / "agent" / "transcript.jsonl").stat().st_size > 0  # the CLI's own event stream
    inspect = subprocess.run([sys.executable, "-m", "curbench_env.cli", "inspect", str(run_dir)], capture_output=True,
                             text=True, timeout=120, env=env)
    assert inspect.returncode == 0 and "c.txt" in inspect.stdout
    report = subprocess.run([sys.executable, "-m", "curbench_env.cli", "report", str(run_dir), "--out",
                             str(tmp_path / "report")], capture_output=True, text=True, timeout=300, env=env)
    assert report.returncode == 0 and (tmp_path / "report" / "report.md").exists()


@pytest.mark.slow
def test_any_mcp_client_runs_an_episode_with_mcp_cmd(tiny_world, tmp_path):
    run_dir = tmp_path / "run"
    client = f"{sys.executable} {os.path.join(os.path.dirname(__file__), 'mcp_client_agent.py')} {{mcp_config}}"
    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent)}
    out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "run", "--agent", f"mcp-cmd:{client}", "--env",
                          "Curation-MiniVQA-v0", "--preset", "tiny", "--iterations", "2", "--backend", "local",
                          "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    transcript = (run_dir / "agent" / "transcript.jsonl").read_text()
    assert '"submitted": true' in transcript and all(t in transcript for t in TOOL_NAMES)
    assert [m["iteration"] for m in RunDirectory(run_dir).iterations()] == [1]
    assert RunDirectory(run_dir).steps()[-1]["terminated"]  # `finish` ended it
