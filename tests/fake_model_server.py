"""A local stand-in for a model provider that replays a scripted conversation, so the real Claude Code
and Codex binaries can run an episode with no network.

It speaks Anthropic's Messages API (``/v1/messages``, streamed or not) and OpenAI's Responses and Chat
Completions APIs (``/v1/responses``, ``/v1/chat/completions``, streamed). The script is provider-neutral:
each turn is a tool call by its short name (``bash``, ``submit``, ``finish``...) with arguments, or a
text reply. A request that offers the episode's tools takes the next turn; any other request (a CLI's
side calls: titles, summaries) gets a short text and leaves the script where it is. Tool names are
matched by suffix, so ``mcp__curbench__bash`` and ``curbench__bash`` both are ``bash``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedModel:
    """The conversation to replay and what was asked of it."""

    def __init__(self, turns: list[dict[str, Any]], tool_names: tuple[str, ...]) -> None:
        self.turns = list(turns)
        self.tool_names = tool_names
        self.position = 0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next_turn(self, offered: list[str]) -> tuple[dict[str, Any], str | None]:
        """The next scripted turn, with the offered tool name it maps to (None for text)."""
        mine = [n for n in offered if any(n == t or n.endswith("__" + t) for t in self.tool_names)]
        with self.lock:
            if not mine or self.position >= len(self.turns):
                return {"text": "Done."}, None
            turn = self.turns[self.position]
            self.position += 1
        if "tool" not in turn:
            return turn, None
        name = next((n for n in mine if n == turn["tool"] or n.endswith("__" + turn["tool"])), turn["tool"])
        return turn, name


def _sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> bytes:
    out = []
    for name, data in events:
        body = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {body}\n\n")
    return "".join(out).encode()


USAGE = {"input_tokens": 120, "output_tokens": 30}


def anthropic_reply(turn: dict[str, Any], name: str | None, n: int, stream: bool) -> tuple[bytes, str]:
    if name is not None:
        block = {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": turn.get("args", {})}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": turn.get("text", "")}
        stop = "end_turn"
    message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": "fake-model", "content": [block],
               "stop_reason": stop, "stop_sequence": None, "usage": USAGE}
    if not stream:
        return json.dumps(message).encode(), "application/json"
    start = dict(block, input={}) if name is not None else dict(block, text="")
    delta = ({"type": "input_json_delta", "partial_json": json.dumps(turn.get("args", {}))} if name is not None
             else {"type": "text_delta", "text": block.get("text", "")})
    return _sse([
        ("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                                   usage={"input_tokens": 120, "output_tokens": 1})}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 30}}),
        ("message_stop", {"type": "message_stop"}),
    ]), "text/event-stream"


def responses_reply(turn: dict[str, Any], name: str | None, n: int, namespaces: set[str] | None = None) -> bytes:
    if name is not None:
        args = json.dumps(turn.get("args", {}))
        item = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}", "name": name, "arguments": args,
                "status": "completed"}
        if namespaces and "__" in name and name.rsplit("__", 1)[0] in namespaces:  # a tool inside a namespace
            item["namespace"], item["name"] = name.rsplit("__", 1)
        middle = [("response.function_call_arguments.delta",
                   {"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": 0,
                    "delta": args}),
                  ("response.function_call_arguments.done",
                   {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": 0,
                    "arguments": args})]
    else:
        text = turn.get("text", "")
        item = {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        middle = [("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item["id"],
                                                  "output_index": 0, "content_index": 0, "delta": text})]
    usage = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 30,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 150}
    response = {"id": f"resp_{n}", "object": "response", "status": "completed", "model": "fake-model", "output": [item],
                "usage": usage}
    added = dict(item, arguments="") if name is not None else dict(item, content=[])
    return _sse([
        ("response.created", {"type": "response.created", "response": dict(response, status="in_progress", output=[])}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": added}),
        *middle,
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "response": response}),
    ])


def chat_reply(turn: dict[str, Any], name: str | None, n: int) -> bytes:
    if name is not None:
        delta = {"role": "assistant", "tool_calls": [{"index": 0, "id": f"call_{n}", "type": "function", "function": {
            "name": name, "arguments": json.dumps(turn.get("args", {}))}}]}
        finish = "tool_calls"
    else:
        delta, finish = {"role": "assistant", "content": turn.get("text", "")}, "stop"
    chunk = {"id": f"chat_{n}", "object": "chat.completion.chunk", "model": "fake-model"}
    return _sse([
        (None, dict(chunk, choices=[{"index": 0, "delta": delta, "finish_reason": None}])),
        (None, dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": finish}],
                    usage={"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150})),
        (None, "[DONE]"),
    ])


def offered_tools(body: dict[str, Any]) -> list[str]:
    """Names of the tools a request offers; a namespace's tools (Codex groups an MCP server's tools in
    one) as ``namespace__name``."""
    names = []
    for t in body.get("tools") or []:
        name = t.get("name") or (t.get("function") or {}).get("name")
        if t.get("type") == "namespace":
            names += [f"{name}__{sub.get('name')}" for sub in t.get("tools") or []]
        elif name:
            names.append(name)
    return names


class FakeModelServer:
    """Serves a :class:`ScriptedModel` on 127.0.0.1 (``url``) until ``close``."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?", 1)[0]
                outer.model.requests.append({"path": path, "body": body, "headers": dict(self.headers), "time": time.time()})
                if path.endswith("/count_tokens"):
                    self._send(json.dumps({"input_tokens": 100}).encode(), "application/json")
                    return
                turn, name = outer.model.next_turn(offered_tools(body))
                n = len(outer.model.requests)
                if path.endswith("/messages"):
                    self._send(*anthropic_reply(turn, name, n, bool(body.get("stream"))))
                elif path.endswith("/responses"):
                    namespaces = {t.get("name") for t in body.get("tools") or [] if t.get("type") == "namespace"}
                    self._send(responses_reply(turn, name, n, namespaces), "text/event-stream")
                elif path.endswith("/chat/completions"):
                    self._send(chat_reply(turn, name, n), "text/event-stream")
                else:
                    self.send_error(404)

            def do_GET(self) -> None:  # noqa: N802  (model listings)
                self._send(json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode(),
                           "application/json")

            def _send(self, data: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
