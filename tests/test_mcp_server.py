"""`curbench mcp`: the episode's tools driven by the MCP SDK's own client (in process, and over stdio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
import pytest

mcp = pytest.importorskip("mcp")

from curbench_env.mcp_server import TOOL_NAMES, EpisodeSession, build_server  # noqa: E402
from curbench_env.trajectory import RunDirectory  # noqa: E402

PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('p.txt','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:6]))\"")


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_an_mcp_client_lists_the_tools_runs_submits_and_finishes(make_env):
    env = make_env(iteration_budget=3)
    session = EpisodeSession(env, seed=0, agent="mcp-test")
    brief = session.start()
    server = build_server(session)

    async def drive() -> dict:
        async with mcp.Client(server) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            ran = await client.call_tool("bash", {"command": PICK + " && wc -l < p.txt"})
            bad = await client.call_tool("submit", {"path": "nope.txt"})
            good = await client.call_tool("submit", {"path": "p.txt", "note": "good hints"})
            state = await client.call_tool("status", {})
            done = await client.call_tool("finish", {})
            after = await client.call_tool("bash", {"command": "echo too late"})
            return {"tools": tools, "ran": ran, "bad": bad, "good": good, "state": state, "done": done, "after": after}

    r = anyio.run(drive)
    assert r["tools"] == set(TOOL_NAMES) and "Tiny task" in brief
    assert "[exit code 0]" in text(r["ran"]) and not r["ran"].is_error
    assert r["bad"].is_error and "no such file" in text(r["bad"])  # the precise message step gives
    assert not r["good"].is_error and "iteration 1/3" in text(r["good"])
    state = r["state"].structured_content or json.loads(text(r["state"]))
    state = state.get("result", state)
    assert state["iteration"] == 1 and state["budget_left"] == 2 and state["last_scored"]["note"] == "good hints"
    assert "Episode ended" in text(r["done"]) and r["after"].is_error
    steps = RunDirectory(env.run_dir).steps()  # recorded exactly as step records them
    assert [s.get("action", "")[:6] for s in steps[1:]] == ["python", "submit", "submit", "done"]
    assert RunDirectory(env.run_dir).config["agent"] == "mcp-test"


def test_curbench_mcp_serves_an_episode_over_stdio(tiny_world, tmp_path):
    """The CLI over stdio, as Claude Code or Codex start it (the MiniVQA tiny world, built once)."""
    from mcp import StdioServerParameters

    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent), "CURBENCH_RUNS": str(tmp_path / "runs")}
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "curbench_env.cli", "mcp", "--env", "Curation-MiniVQA-v0", "--preset", "tiny", "--iterations", "2",
        "--backend", "local", "--run-dir", str(tmp_path / "run")], env=env)

    async def drive() -> tuple:
        async with mcp.Client(params, read_timeout_seconds=300) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            out = await client.call_tool("bash", {"command": "pool-stats | head -2"})
            return tools, out

    tools, out = anyio.run(drive)
    assert tools == set(TOOL_NAMES) and "records: 2000" in text(out)
    assert RunDirectory(tmp_path / "run").steps()[1]["action"] == "pool-stats | head -2"


def test_curbench_mcp_with_an_unknown_env_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "mcp", "--env", "Curation-Nope-v0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown env" in out.stderr
