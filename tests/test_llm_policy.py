"""LiteLLMPolicy against a local OpenAI-compatible fake server: a real episode with a
submission, a malformed tool call, a provider error and a context overflow."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("litellm")

from curbench_env.agents.llm import LiteLLMPolicy  # noqa: E402

from curbench_env.runner import run_episode  # noqa: E402

PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('picks.txt','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:10]))\"")


def tool(name: str, args: dict | str) -> dict:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {"tool_calls": [{"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}]}


class FakeLLM:
    """Serves scripted replies: a dict (assistant message), or an int (HTTP error status)."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                item = outer.script.pop(0) if outer.script else {"content": "done"}
                if isinstance(item, int):
                    msg = ("This model's maximum context length is 100 tokens. However, your messages resulted in 500 tokens."
                           if item == 400 else "server error")
                    payload = json.dumps({"error": {"message": msg,
                                                    "type": "invalid_request_error" if item == 400 else "server_error",
                                                    "code": "context_length_exceeded" if item == 400 else None}})
                    self.send_response(item)
                else:
                    message = {"role": "assistant", "content": item.get("content")}
                    if "tool_calls" in item:
                        message["tool_calls"] = item["tool_calls"]
                    payload = json.dumps({
                        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "message": message,
                                     "finish_reason": "tool_calls" if "tool_calls" in item else "stop"}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
                    self.send_response(200)
                data = payload.encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake():
    servers = []

    def make(script):
        s = FakeLLM(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def policy_for(server: FakeLLM, **kw) -> LiteLLMPolicy:
    return LiteLLMPolicy("openai/fake-model", api_base=server.api_base, api_key="sk-test", backoff_s=0.0,
                         timeout=10, **kw)


def test_episode_with_submission_error_malformed_call_and_overflow(make_env, fake, tmp_path):
    server = fake([
        500,                                             # provider error -> retried
        tool("bash", {"command": PICK}),
        tool("submit", "{not json"),                     # malformed -> the model is told and asked again
        tool("submit", {"path": "picks.txt", "note": "clean ids"}),
        400,                                             # context overflow -> history shrunk, retried
        tool("done", {}),
    ])
    env = make_env(iteration_budget=3)
    policy = policy_for(server, cache_path=tmp_path / "cache.json")
    summary = run_episode(env, policy, seed=0, progress=False)
    assert summary["iterations"] == 1 and summary["return"] > 0
    assert policy.usage["retries"] >= 1 and policy.usage["malformed"] == 1
    assert policy.usage["prompt_tokens"] > 0 and policy.usage["calls"] >= 4
    assert server.requests[0]["tools"][0]["function"]["name"] == "bash"
    assert any(m.get("role") == "tool" and "Invalid action" in m.get("content", "") for m in policy.messages)
    assert "Tiny task" in server.requests[0]["messages"][0]["content"]
    usage = json.loads((env.run_dir / "usage.json").read_text())
    assert usage["prompt_tokens"] == policy.usage["prompt_tokens"] > 0


def test_plain_text_protocol_for_models_without_tools(make_env, fake):
    server = fake([{"content": f"I will pick.\n```bash\n{PICK} && submit picks.txt\n```"}, {"content": "done"}])
    env = make_env()
    summary = run_episode(env, policy_for(server, use_tools=False), seed=0, progress=False)
    assert summary["iterations"] == 1
    assert "tools" not in server.requests[0]


def test_recorded_run_replays_without_the_server(make_env, fake, tmp_path):
    server = fake([tool("bash", {"command": "echo hi"}), tool("done", {})])
    cache = tmp_path / "cache.json"
    run_episode(make_env(), policy_for(server, cache_path=cache), seed=0, progress=False)
    server.close()
    replay = LiteLLMPolicy("openai/fake-model", cache_path=cache, replay=True)
    env = make_env()
    summary = run_episode(env, replay, seed=0, progress=False)
    assert summary["steps"] == 2


def test_long_history_is_shortened_but_keeps_feedback(fake):
    server = fake([])
    policy = policy_for(server, context_chars=3000)
    policy.reset({"output": "readme"}, {})
    for k in range(20):
        policy.messages.append({"role": "assistant", "content": f"cmd {k}"})
        policy.messages.append({"role": "user", "content": ("x" * 2000) if k != 3 else "== submission a.txt: 5 examples ==" + "y" * 900})
    policy._fit_context()
    assert sum(len(json.dumps(m)) for m in policy.messages) <= 3000
    assert policy.messages[0]["role"] == "system"


def test_provider_failure_is_a_clear_error(make_env, fake):
    from curbench_env.agents.llm import AgentError

    server = fake([500, 500, 500])
    policy = policy_for(server, max_retries=2)
    policy.reset({"output": "readme"}, {})
    with pytest.raises(AgentError, match="after 3 attempts"):
        policy.act({"output": ""}, {})
