"""Native mode: the agent's CLI runs inside the episode's sandbox with `submit`/`status`/`finish` on its PATH
and its model reached through a key-adding proxy outside (the key never enters the sandbox).

The plumbing is tested with a shell in the agent's sandbox (no CLI binary needed); the real Claude Code
and Codex binaries then run a whole episode against the local fake provider."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from curbench_env.agents.native import ModelProxy, NativeSandbox

from curbench_env.session import EpisodeSession
from curbench_env.trajectory import RunDirectory

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="native mode runs in bubblewrap (not installed)")

REAL_KEY = "sk-real-key-0123"
TINY_PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
             "open('p.txt','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
             "and r['id']!='leak01'][:6]))\"")


def test_only_model_calls_pass_the_proxy_and_hosted_tools_are_taken_out():
    from curbench_env.agents.native import model_endpoint, without_hosted_tools

    assert all(model_endpoint(p) for p in ["/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens",
                                           "/v1/responses", "/v1/chat/completions"])
    assert model_endpoint("/v1/models", "GET") and model_endpoint("/v1/models/claude-x", "GET")
    assert not any(model_endpoint(p) for p in [
        "/v1/files", "/v1/messages/../files", "/v1/messages/%2e%2e/files", "/v1/messages/%2E%2E/batches",
        "/v1/messages/batches", "/v1/messagesX", "http://evil/v1/messages", "/v1/messages/./x",
        "/v1/models\\..\\files", "/v1/messages/..;/files", "/v1/responses/resp_1", ""])
    assert not model_endpoint("/v1/models/ft:abc", "DELETE") and not model_endpoint("/v1/chat/completions", "GET")
    assert not model_endpoint("/v1/messages", "GET") and not model_endpoint("/v1/models/a/b", "GET")
    body = json.dumps({"model": "m", "tools": [{"name": "Bash", "input_schema": {}},
                                              {"type": "web_search_20250305", "name": "web_search"}],
                       "mcp_servers": [{"url": "https://x"}]}).encode()
    kept, refusal = without_hosted_tools(body)
    assert refusal is None and json.loads(kept) == {"model": "m", "tools": [{"name": "Bash", "input_schema": {}}]}
    only_hosted, _ = without_hosted_tools(json.dumps({"tools": [{"type": "web_search"}], "tool_choice": "auto"}).encode())
    assert json.loads(only_hosted) == {}
    assert without_hosted_tools(json.dumps({"background": True}).encode())[1]
    assert without_hosted_tools(b"[1, 2]") == (b"[1, 2]", None)


def test_the_model_proxy_swaps_the_key_and_refuses_other_apis(tmp_path):
    import httpx
    from fake_model_server import FakeModelServer, ScriptedModel

    model = ScriptedModel([{"text": "hello from upstream"}], ("Bash",))
    upstream = FakeModelServer(model)
    proxy = ModelProxy(tmp_path / "model.sock", upstream.url, {"x-api-key": REAL_KEY})
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "model.sock"))) as client:
            body = {"model": "m", "stream": True, "messages": [], "tools": [{"name": "Bash"}]}
            streamed = client.post("http://sandbox/v1/messages", json=body, headers={"x-api-key": "placeholder"})
            files = client.get("http://sandbox/v1/files", headers={"x-api-key": "placeholder"})
        answers = []
        for head in (b"POST /v1/messages HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                     b"POST /v1/messages HTTP/1.1\r\nContent-Length: -1\r\n\r\n"):
            with socket.socket(socket.AF_UNIX) as raw:  # a body the proxy must not try to read
                raw.settimeout(10)
                raw.connect(str(tmp_path / "model.sock"))
                raw.sendall(head)
                answers.append(raw.recv(4096).decode())
    finally:
        proxy.close()
        upstream.close()
    assert streamed.status_code == 200 and "hello from upstream" in streamed.text and "message_stop" in streamed.text
    assert [r["headers"].get("x-api-key") for r in model.requests] == [REAL_KEY]  # never the placeholder
    assert files.status_code == 403 and "not a model call" in files.json()["error"]["message"]
    assert all(a.startswith("HTTP/1.1 413") for a in answers), answers
    assert proxy.requests == 1 and proxy.refused == 3 and len(model.requests) == 1


@needs_bwrap
def test_a_shell_in_the_agents_sandbox_submits_reads_status_and_finishes(make_env, tmp_path):
    """What a native CLI's shell does, done by bash: the desk programs, the login PATH, the bridge."""
    from fake_model_server import FakeModelServer, ScriptedModel

    env = make_env(backend="bwrap", iteration_budget=3)
    session = EpisodeSession(env, seed=0, agent="native-test")
    session.start()
    upstream_model = ScriptedModel([{"text": "pong"}], ("Bash",))
    upstream = FakeModelServer(upstream_model)
    script = "; ".join([
        "echo KEYS=$(env | grep -c sk-real-key)", "echo LOGIN=$(bash -lc 'command -v submit')",
        TINY_PICK, "submit p.txt --note 'good hints'", "echo EXIT=$?", "submit nope.txt; echo EXIT=$?",
        "status", "printf '{not json' | python3 -c \"import socket,os,sys; s=socket.socket(socket.AF_UNIX); "
        "s.connect(os.environ['CURBENCH_DESK']); s.sendall(sys.stdin.buffer.read()); s.shutdown(1); "
        "print(s.recv(9999).decode())\"",
        "python3 -c \"import urllib.request as u, json; r=u.Request('http://127.0.0.1:8787/v1/messages', "
        "data=json.dumps({'messages': []}).encode(), headers={'x-api-key': 'placeholder'}); "
        "print('MODEL', u.urlopen(r).read().decode()[:200])\"",
        "finish", "submit p.txt; echo EXIT=$?"])
    sandbox = NativeSandbox("claude-code", session, base_url=upstream.url, credentials={"x-api-key": REAL_KEY})
    try:
        with sandbox:
            proc = sandbox.spawn(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out = proc.communicate(timeout=300)[0].decode()
    finally:
        upstream.close()
        session.close()
    assert "KEYS=0" in out and "LOGIN=/opt/curbench/bin/submit" in out, out
    assert "iteration 1/3" in out and "EXIT=0" in out and " queued; " not in out, out
    assert "nope.txt: no such file" in out and "EXIT=2" in out  # refused inside, nothing sent
    assert "iteration 1 · submissions left 2" in out and "malformed request" in out, out
    assert "MODEL" in out and "assistant" in out and upstream_model.requests[0]["headers"]["x-api-key"] == REAL_KEY, out
    assert "Episode ended" in out and "the episode has ended" in out and out.rstrip().endswith("EXIT=1"), out
    run = RunDirectory(env.run_dir)
    assert [m["iteration"] for m in run.iterations()] == [1] and run.steps()[-1]["terminated"]
    assert [s.get("action", "")[:6] for s in run.steps()[1:]] == ["submit", "done"]  # each desk call is a step


def test_native_mode_refuses_clearly_before_building_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    env["CURBENCH_HOME"] = str(tmp_path / "home")
    base = [sys.executable, "-m", "curbench_env.cli", "run", "--native", "--env", "Curation-MiniVQA-v0"]
    no_key = subprocess.run(base + ["--agent", "claude-code"], capture_output=True, text=True, timeout=120, env=env)
    curator = subprocess.run(base + ["--agent", "curator"], capture_output=True, text=True, timeout=120, env=env)
    docker = subprocess.run(base + ["--agent", "codex", "--backend", "docker"], capture_output=True, text=True,
                            timeout=120, env={**env, "OPENAI_API_KEY": "k"})
    assert no_key.returncode != 0 and "needs ANTHROPIC_API_KEY" in no_key.stdout + no_key.stderr
    assert curator.returncode != 0 and "runs claude-code[:MODEL] or codex" in curator.stdout + curator.stderr
    assert docker.returncode != 0 and "needs the bwrap backend" in docker.stdout + docker.stderr
    assert not (tmp_path / "home").exists()  # no world was built


PICK = ("python3 -c \"import json,os; rs=json.load(open(os.environ['POOL']+'/pool.json')); "
        "open('{f}','w').write(chr(10).join(r['id'] for r in rs[{a}:{b}]))\"")


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("agent,binary,tool", [("claude-code", "claude", "Bash"), ("codex", "codex", "exec_command")])
def test_a_cli_agent_runs_an_episode_inside_the_sandbox(agent, binary, tool, tiny_world, tmp_path):
    """`curbench run --agent claude-code|codex --native`: the real binary in the sandbox, its own shell tool
    runs pool-stats, writes selections and submits; the provider key reaches only the fake provider."""
    if shutil.which(binary) is None:
        pytest.skip(f"the {binary} CLI is not installed (npm install -g the package)")
    from fake_model_server import FakeModelServer, ScriptedModel

    def shell(command: str) -> dict:
        args = {"command": command} if agent == "claude-code" else {"cmd": command, "yield_time_ms": 30000}
        return {"tool": tool, "args": args}

    script = [shell("pool-stats | head -3; echo KEYS=$(env | grep -c sk-real-key)"),
              shell(PICK.format(f="a.txt", a=0, b=150)), shell("submit a.txt --note 'first 150'"),
              shell(PICK.format(f="b.txt", a=150, b=300)), shell("submit b.txt --note 'next 150'"),
              shell("status"), shell("finish"), {"text": "Finished."}]
    model = ScriptedModel(script, (tool,))
    server = FakeModelServer(model)
    run_dir = tmp_path / "run"
    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent), "ANTHROPIC_API_KEY": REAL_KEY,
           "OPENAI_API_KEY": REAL_KEY}
    try:
        out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "run", "--agent", f"{agent}:fake-model",
                              "--native", "--env", "Curation-MiniVQA-v0", "--preset", "tiny", "--iterations", "3",
                              "--run-dir", str(run_dir), "--agent-base-url", server.url, "--wall-clock", "600"],
                             capture_output=True, text=True, timeout=900, env=env)
    finally:
        server.close()
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert model.position == len(script), (model.position, (run_dir / "agent" / "transcript.jsonl").read_text()[-3000:])
    run = RunDirectory(run_dir)
    assert [m["iteration"] for m in run.iterations()] == [1, 2] and run.steps()[-1]["terminated"]
    assert [m["note"] for m in run.iterations()] == ["first 150", "next 150"]
    transcript = (run_dir / "agent" / "transcript.jsonl").read_text()
    assert "KEYS=0" in transcript and "records:" in transcript and "Traceback" not in transcript
    seen = {r["headers"].get("x-api-key") or r["headers"].get("authorization") for r in model.requests}
    assert seen == {REAL_KEY if agent == "claude-code" else f"Bearer {REAL_KEY}"}
    usage = json.loads((run_dir / "usage.json").read_text())
    assert usage["mode"] == "native" and usage["prompt_tokens"] > 0 and usage["model_requests"] == len(model.requests)
    inspect = subprocess.run([sys.executable, "-m", "curbench_env.cli", "inspect", str(run_dir)], capture_output=True,
                             text=True, timeout=120, env=env)
    assert inspect.returncode == 0 and "b.txt" in inspect.stdout
    resume = subprocess.run([sys.executable, "-m", "curbench_env.cli", "resume", str(run_dir)], capture_output=True,
                            text=True, timeout=120, env=env)
    assert resume.returncode != 0 and "conversation cannot be resumed" in resume.stdout + resume.stderr


def test_a_cli_installed_beside_protected_places_is_not_mounted(tmp_path):
    """Mounting the CLI's installation must not show the home, the worlds or the run directory."""
    from curbench_env.agents.native import _cli_mounts

    from curbench_env.errors import CurbenchError

    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    loose = home / "codex"  # a bare binary in the home: its folder is the whole home
    loose.write_text("#!/bin/sh\n")
    with pytest.raises(CurbenchError, match="would show"):
        _cli_mounts(str(loose), [home])
    (home / "bin" / "codex").write_text("#!/bin/sh\n")  # in a folder of its own: only that folder
    assert [m.host for m in _cli_mounts(str(home / "bin" / "codex"), [home])] == [home / "bin"]
    package = tmp_path / "opt" / "lib" / "node_modules" / "@openai" / "codex"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text("{}")
    (package / "bin" / "codex.js").write_text("")
    mounts = _cli_mounts(str(package / "bin" / "codex.js"), [home])
    assert package in [m.host for m in mounts] and all(m.read_only for m in mounts)
