"""Coding-agent CLIs as curbench agents: Claude Code and Codex drive an episode through `curbench mcp`.

The launcher writes the CLI's MCP configuration (the episode server is `curbench mcp` over stdio,
started by the CLI itself, recording to a run directory the launcher chose), allows only the
curbench tools, starts the real binary with the task prompt, stops it at the wall-clock limit, and
keeps its event stream (``agent/transcript.jsonl``), token counts and cost (``usage.json``) in the
run directory. Provider keys stay in the CLI's environment: the sandbox starts with a bare one.

``--agent claude-code[:MODEL]``: ``claude -p PROMPT --output-format stream-json`` with built-in
tools off (otherwise Claude hides MCP tools behind a tool search). ``--agent codex[:MODEL]``:
``codex exec --json`` with the server ``required`` (Codex silently drops an MCP server that starts
in more than about a second, and a first world build takes longer). ``base_url`` points either at
a compatible endpoint (a proxy, a local model server); the tests use a scripted fake provider.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curbench_env.errors import CurbenchError

PROMPT = """You are a data-curation agent. A fixed model is fine-tuned on the subset of a candidate pool you
submit and scored on held-out benchmarks; your goal is the best score within the iteration budget.
Work only through the curbench tools: call `brief` first (the task, the rules, the budget), then use
`bash` to inspect the pool and write selection scripts in the workspace, `submit` a file of ids with
a note saying what the policy does, read the per-benchmark scores, revise, and call `finish` when
you are done."""

PROMPT_NATIVE = """You are a data-curation agent. A fixed model is fine-tuned on the subset of a candidate pool you
submit and scored on held-out benchmarks; your goal is the best score within the iteration budget.
Your shell's working directory is the curation workspace: inspect the read-only pool at $POOL, write
selection scripts and files here, then run `submit FILE --note "what the policy does"` (it waits for
the training and prints the per-benchmark scores; if it is interrupted, `status` shows the score).
`status` shows the budget and scores; run `finish` when you are done. The task and its rules:"""


@dataclass
class CLIAgentRun:
    """What a launcher needs: the episode server's command and where to record."""

    run_dir: Path
    server_args: list[str]
    model: str | None = None
    base_url: str | None = None
    wall_clock_s: float = 3600.0
    tool_timeout_s: float = 1800.0
    extra_env: dict[str, str] = field(default_factory=dict)


def server_command(env_id: str, run_dir: Path, *, seed: int, agent: str, backend: str = "auto",
                   iterations: int | None = None, scaffolds: list[str] | None = None,
                   task_args: list[str] | None = None) -> list[str]:
    """The `curbench mcp` command line (run with this interpreter) that serves the episode."""
    args = [sys.executable, "-m", "curbench_env.cli", "mcp", "--env", env_id, "--run-dir", str(run_dir),
            "--seed", str(seed), "--agent", agent, "--backend", backend]
    if iterations is not None:
        args += ["--iterations", str(iterations)]
    for s in scaffolds or []:
        args += ["--scaffold", s]
    for t in task_args or []:
        args += ["--task-arg", t]
    return args


def _run(argv: list[str], env: dict[str, str], cwd: Path, transcript: Path, wall_clock_s: float) -> int:
    """Run the CLI, its event stream into ``transcript``; kill it at the wall clock. Its exit code."""
    transcript.parent.mkdir(parents=True, exist_ok=True)
    with open(transcript, "wb") as out, open(transcript.with_suffix(".stderr.log"), "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            return proc.wait(timeout=wall_clock_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -9


def _events(transcript: Path) -> list[dict[str, Any]]:
    events = []
    for line in transcript.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _server_env() -> dict[str, str]:
    """What the episode server needs from the launcher's environment (where worlds and runs live)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CURBENCH_")}


def _mcp_config(run: CLIAgentRun, folder: Path) -> Path:
    """Write the episode server's MCP configuration (the common ``mcpServers`` form) into ``folder``."""
    path = folder / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"curbench": {"command": run.server_args[0],
                                                            "args": run.server_args[1:], "env": _server_env()}}}))
    return path


def _binary(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise CurbenchError(f"the `{name}` CLI is not installed: npm install -g {package}")
    return exe


def run_claude_code(run: CLIAgentRun) -> dict[str, Any]:
    """Claude Code on the episode; returns its usage (tokens, cost, turns)."""
    exe = _binary("claude", "@anthropic-ai/claude-code")
    work = Path(tempfile.mkdtemp(prefix="curbench-claude-"))
    argv = [exe, "-p", PROMPT, "--output-format", "stream-json", "--verbose", "--mcp-config", str(_mcp_config(run, work)),
            "--strict-mcp-config", "--tools", "", "--allowedTools", "mcp__curbench__*"]
    if run.model:
        argv += ["--model", run.model]
    # Blocking MCP connection: in print mode Claude otherwise sends its first request before the
    # episode server is up, with no tools at all.
    env = {**os.environ, "MCP_TOOL_TIMEOUT": str(int(run.tool_timeout_s * 1000)), "MCP_TIMEOUT": "900000",
           "MCP_CONNECT_TIMEOUT_MS": "900000", "MCP_CONNECTION_NONBLOCKING": "false", "DISABLE_AUTOUPDATER": "1",
           **run.extra_env}
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # Claude Code refuses to run as root otherwise
    if run.base_url:
        env["ANTHROPIC_BASE_URL"] = run.base_url
    transcript = run.run_dir / "agent" / "transcript.jsonl"
    code = _run(argv, env, work, transcript, run.wall_clock_s)
    return {"agent": "claude-code", "model": run.model, "exit_code": code, **claude_usage(transcript)}


def claude_usage(transcript: Path) -> dict[str, Any]:
    """Turns, tokens and cost from Claude Code's stream-json transcript (its last ``result`` event)."""
    result = next((e for e in reversed(_events(transcript)) if e.get("type") == "result"), {}) if transcript.exists() else {}
    usage = result.get("usage") or {}
    return {"turns": result.get("num_turns"), "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0), "cost_usd": result.get("total_cost_usd", 0.0)}


def run_codex(run: CLIAgentRun) -> dict[str, Any]:
    """Codex on the episode; returns its usage (tokens, turns)."""
    exe = _binary("codex", "@openai/codex")
    home = Path(tempfile.mkdtemp(prefix="curbench-codex-"))
    lines = []
    if run.model:
        lines.append(f"model = {json.dumps(run.model)}")
    if run.base_url:
        lines += ['model_provider = "curbench"', "", "[model_providers.curbench]", 'name = "curbench"',
                  f"base_url = {json.dumps(run.base_url.rstrip('/') + '/v1')}", 'wire_api = "responses"',
                  'env_key = "OPENAI_API_KEY"']
    server_env = _server_env()
    # Codex's own shell would run on the host, outside the episode's sandbox (and could read the hidden
    # data): it is switched off; the agent acts only through the curbench tools, approved in advance.
    lines += ["", "[features]", "shell_tool = false", "unified_exec = false", "view_image = false"]
    lines += ["", "[mcp_servers.curbench]", f"command = {json.dumps(run.server_args[0])}",
              f"args = {json.dumps(run.server_args[1:])}", "required = true", "startup_timeout_sec = 900",
              f"tool_timeout_sec = {int(run.tool_timeout_s)}", 'default_tools_approval_mode = "approve"']
    if server_env:
        lines += ["[mcp_servers.curbench.env]", *[f"{k} = {json.dumps(v)}" for k, v in server_env.items()]]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    work = home / "work"
    work.mkdir()
    argv = [exe, "exec", "--json", "--skip-git-repo-check", PROMPT]
    env = {**os.environ, "CODEX_HOME": str(home), **run.extra_env}
    env.setdefault("OPENAI_API_KEY", os.environ.get("OPENAI_API_KEY", ""))
    transcript = run.run_dir / "agent" / "transcript.jsonl"
    code = _run(argv, env, work, transcript, run.wall_clock_s)
    return {"agent": "codex", "model": run.model, "exit_code": code, **codex_usage(transcript)}


def codex_usage(transcript: Path) -> dict[str, Any]:
    """Turns and tokens from Codex's ``--json`` events (one ``turn.completed`` per turn; no cost)."""
    tokens = [e.get("usage") or {} for e in (_events(transcript) if transcript.exists() else [])
              if e.get("type") == "turn.completed"]
    return {"turns": len(tokens), "prompt_tokens": sum(int(u.get("input_tokens") or 0) for u in tokens),
            "completion_tokens": sum(int(u.get("output_tokens") or 0) for u in tokens), "cost_usd": None}


def run_mcp_command(run: CLIAgentRun, command: str) -> dict[str, Any]:
    """Any MCP client (OpenHands, a custom agent): ``command`` is run by a shell in a scratch folder,
    with ``{mcp_config}`` replaced by the path of an MCP configuration file (the common
    ``{"mcpServers": {"curbench": {"command", "args", "env"}}}`` form) and the same path in
    ``$CURBENCH_MCP_CONFIG``, and ``{prompt}`` by the quoted task prompt."""
    import shlex

    work = Path(tempfile.mkdtemp(prefix="curbench-mcp-client-"))
    config = _mcp_config(run, work)
    line = command.replace("{mcp_config}", shlex.quote(str(config))).replace("{prompt}", shlex.quote(PROMPT))
    env = {**os.environ, "CURBENCH_MCP_CONFIG": str(config), **run.extra_env}
    code = _run(["bash", "-c", line], env, work, run.run_dir / "agent" / "transcript.jsonl", run.wall_clock_s)
    return {"agent": "mcp-cmd", "command": command, "exit_code": code, "turns": None, "prompt_tokens": None,
            "completion_tokens": None, "cost_usd": None}


LAUNCHERS = {"claude-code": run_claude_code, "codex": run_codex}


def split_native(spec: str) -> tuple[str, bool]:
    """``"codex:MODEL --native"`` → (``"codex:MODEL"``, True): how a sweep spec, ``--agent`` and the run
    directory's ``agent`` say native mode; any other spec comes back unchanged with False."""
    trimmed = spec.rstrip()
    return (trimmed.removesuffix(" --native").rstrip(), True) if trimmed.endswith(" --native") else (spec, False)


def is_cli_agent(spec: str) -> bool:
    """Whether ``spec`` (``claude-code[:MODEL]``, ``codex[:MODEL]``, either with `` --native``,
    ``mcp-cmd:COMMAND``) names a CLI agent."""
    name = split_native(spec)[0].partition(":")[0]
    return name in LAUNCHERS or name == "mcp-cmd"


def launch(spec: str, run: CLIAgentRun) -> dict[str, Any]:
    """Run the CLI agent named by ``spec`` on the episode ``run`` describes; writes usage.json."""
    name, _, rest = spec.partition(":")
    t0 = time.monotonic()
    if name == "mcp-cmd":
        if not rest.strip():
            raise CurbenchError('mcp-cmd needs a command: --agent \'mcp-cmd:my-agent --mcp-config {mcp_config}\'')
        usage = run_mcp_command(run, rest)
    else:
        run.model = run.model or rest or None
        usage = LAUNCHERS[name](run)
    usage["elapsed_s"] = round(time.monotonic() - t0, 1)
    if (run.run_dir / "config.json").exists():
        (run.run_dir / "usage.json").write_text(json.dumps(usage, indent=2))
    return usage
