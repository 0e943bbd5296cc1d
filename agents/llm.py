"""``LiteLLMPolicy``: any model litellm supports (hosted, vLLM, Ollama, an OpenAI-compatible
``api_base``) as a curation agent, with tool calls or a plain-text fallback."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from curbench_env.errors import CurbenchError

SYSTEM = """You are a data-curation agent working in a Linux terminal. You select training data for a
fixed model; a fixed pipeline trains on each subset you submit and reports benchmark scores.
Work in small steps: inspect the pool, write selection scripts to files, run them, submit, read
the per-benchmark feedback, and revise. Each scored submission spends one iteration.

{protocol}

# Task
{readme}"""

TOOL_PROTOCOL = ("Act by calling exactly one tool per turn: `bash` runs a shell command, `submit` submits a file "
                 "of selected ids, `done` ends the session.")
TEXT_PROTOCOL = ("Act by replying with exactly one shell command in a ```bash fenced block. `submit PATH --note "
                 "TEXT` submits a file of selected ids; the single word `done` ends the session.")

TOOLS = [
    {"type": "function", "function": {
        "name": "bash", "description": "Run one shell command in the workspace (cwd and variables persist).",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "submit", "description": "Submit a file of selected example ids for training and scoring.",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"}, "note": {"type": "string", "description": "what this policy does and why"}},
            "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "done", "description": "End the curation session.",
        "parameters": {"type": "object", "properties": {}}}},
]


class AgentError(CurbenchError):
    """The model provider failed for good (after retries); the run directory stays resumable."""


class LiteLLMPolicy:
    """A curation agent backed by ``litellm.completion``.

    Arguments: ``model`` (a litellm model name, e.g. ``anthropic/claude-sonnet-4-5``,
    ``openai/gpt-4.1``, ``ollama/qwen3``, ``openai/<name>`` with ``api_base``);
    ``use_tools`` (True: tool calls; False: the plain-text protocol, for models without tools);
    ``context_chars`` (history budget; old command outputs are shortened first, submission
    feedback is kept); ``max_retries`` / ``backoff_s`` (rate limits and provider errors);
    ``cache_path`` (JSON file of completions: a recorded run replays deterministically);
    ``replay`` (only use the cache; a miss is an error); other kwargs go to litellm
    (``api_base``, ``api_key``, ``temperature``, ``timeout``...).
    """

    def __init__(self, model: str, *, use_tools: bool = True, context_chars: int = 120_000, max_retries: int = 4,
                 backoff_s: float = 2.0, cache_path: str | Path | None = None, replay: bool = False,
                 output_chars: int = 6_000, **litellm_kwargs: Any) -> None:
        self.model = model
        self.use_tools = use_tools
        self.context_chars = context_chars
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.output_chars = output_chars
        self.kwargs = {"timeout": 120, **litellm_kwargs}
        self.cache_path = Path(cache_path) if cache_path else None
        self.replay = replay
        self._cache: dict[str, Any] = {}
        if self.cache_path and self.cache_path.exists():
            self._cache = json.loads(self.cache_path.read_text())
        self.messages: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {"model": model, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                      "cost_usd": 0.0, "retries": 0, "malformed": 0, "truncations": 0}
        self._pending_tool: str | None = None

    # -- Policy protocol ------------------------------------------------------------------------
    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        protocol = TOOL_PROTOCOL if self.use_tools else TEXT_PROTOCOL
        # The first observation is the whole brief: the task README and any scaffold's text.
        self.messages = [
            {"role": "system", "content": SYSTEM.format(protocol=protocol, readme=obs["output"])},
            {"role": "user", "content": "Begin. Your workspace is ready."},
        ]
        self._pending_tool = None

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        if not self.messages:
            self.reset(obs, info)
        elif self._pending_tool is not None or self.messages[-1]["role"] == "assistant":
            self._observe(obs["output"], info)
        for _ in range(3):  # malformed replies are answered with an error and asked again
            message = self._complete()
            action, error = self._parse(message)
            if action is not None:
                return action
            self.usage["malformed"] += 1
            self._reply_error(error or "no action")
        raise AgentError(f"{self.model} gave no valid action in 3 attempts (last problem: {error})")

    # -- conversation -----------------------------------------------------------------------------
    def _observe(self, output: str, info: dict[str, Any]) -> None:
        text = output if len(output) <= self.output_chars else (
            output[: self.output_chars // 2] + "\n[...]\n" + output[-self.output_chars // 2:])
        text += f"\n[iteration {info.get('iteration')}, {info.get('budget_left')} submissions left, best {info.get('best_score', 0):.2f}]"
        if self._pending_tool:
            self.messages.append({"role": "tool", "tool_call_id": self._pending_tool, "content": text})
            self._pending_tool = None
        else:
            self.messages.append({"role": "user", "content": text})

    def _reply_error(self, error: str) -> None:
        msg = f"Invalid action: {error}. Reply with exactly one action."
        if self._pending_tool:
            self.messages.append({"role": "tool", "tool_call_id": self._pending_tool, "content": msg})
            self._pending_tool = None
        else:
            self.messages.append({"role": "user", "content": msg})

    def _parse(self, message: dict[str, Any]) -> tuple[str | None, str | None]:
        calls = message.get("tool_calls") or []
        if calls:
            call = calls[0]
            self._pending_tool = call.get("id") or "call_0"
            name = call["function"]["name"]
            try:
                args = json.loads(call["function"].get("arguments") or "{}")
            except json.JSONDecodeError as exc:
                return None, f"tool arguments are not valid JSON ({exc.msg})"
            if name == "bash" and isinstance(args.get("command"), str) and args["command"].strip():
                return args["command"], None
            if name == "submit" and isinstance(args.get("path"), str):
                note = args.get("note") or ""
                return f"submit {_quote(args['path'])}" + (f" --note {_quote(note)}" if note else ""), None
            if name == "done":
                return "done", None
            return None, f"unknown tool or missing arguments: {name}({args})"
        content = message.get("content") or ""
        m = re.search(r"```(?:bash|sh|shell)?\n(.*?)```", content, re.S)
        if m and m.group(1).strip():
            return m.group(1).strip(), None
        if content.strip().lower() in ("done", "`done`"):
            return "done", None
        return None, "no tool call and no ```bash block"

    def _fit_context(self) -> None:
        """Shorten old command outputs (oldest first) until the history fits; keep feedback."""
        def size() -> int:
            return sum(len(json.dumps(m)) for m in self.messages)

        k = 2
        while size() > self.context_chars and k < len(self.messages) - 2:
            m = self.messages[k]
            content = m.get("content") or ""
            if m["role"] in ("tool", "user") and len(content) > 400 and "== submission" not in content:
                m["content"] = content[:200] + "\n[output elided to save context]\n" + content[-150:]
                self.usage["truncations"] += 1
            k += 1
        while size() > self.context_chars and len(self.messages) > 4:
            # Still too long: drop the oldest exchange after the system prompt.
            del self.messages[2:4]
            while len(self.messages) > 2 and self.messages[2]["role"] == "tool":
                del self.messages[2]
            self.usage["truncations"] += 1

    def _complete(self) -> dict[str, Any]:
        import litellm

        self._fit_context()
        request = {"model": self.model, "messages": self.messages, **({"tools": TOOLS} if self.use_tools else {})}
        key = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        if key in self._cache:
            message = self._cache[key]
            self.messages.append(message)
            return message
        if self.replay:
            raise AgentError("replay: no recorded completion for this point of the conversation")
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                extra = {"_skip_mcp_handler": True} if self.use_tools else {}
                response = litellm.completion(**request, max_retries=0, **extra, **self.kwargs)
                break
            except litellm.ContextWindowExceededError:
                self.context_chars = int(self.context_chars * 0.6)
                self._fit_context()
                request["messages"] = self.messages
            except (litellm.RateLimitError, litellm.InternalServerError, litellm.Timeout,
                    litellm.APIConnectionError, litellm.ServiceUnavailableError) as exc:
                if attempt == self.max_retries:
                    raise AgentError(f"{self.model}: {type(exc).__name__} after {attempt + 1} attempts: {exc}") from None
                self.usage["retries"] += 1
                time.sleep(delay)
                delay *= 2
            except (litellm.AuthenticationError, litellm.BadRequestError, litellm.NotFoundError) as exc:
                raise AgentError(f"{self.model}: {type(exc).__name__}: {exc}") from None
        else:  # pragma: no cover - the loop always breaks or raises
            raise AgentError(f"{self.model}: no completion")
        msg = response.choices[0].message
        message: dict[str, Any] = {"role": "assistant", "content": msg.content or ""}
        if getattr(msg, "tool_calls", None):
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                     for c in msg.tool_calls[:1]]
        self._account(response)
        self.messages.append(message)
        self._cache[key] = message
        if self.cache_path:
            self.cache_path.write_text(json.dumps(self._cache))
        return message

    def _account(self, response: Any) -> None:
        import litellm

        self.usage["calls"] += 1
        u = getattr(response, "usage", None)
        if u:
            self.usage["prompt_tokens"] += int(getattr(u, "prompt_tokens", 0) or 0)
            self.usage["completion_tokens"] += int(getattr(u, "completion_tokens", 0) or 0)
        try:
            self.usage["cost_usd"] += float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # unknown model prices: tokens are still counted
            pass


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)
