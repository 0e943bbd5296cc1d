"""`curbench mcp`: one episode served as MCP tools, the front door for coding agents (Claude Code,
Codex, OpenHands and any other MCP client).

Tools: ``brief`` (the task README, the rules and any scaffold's text: the session's first
observation, also the server's instructions), ``bash`` (one shell command in the episode's sandbox, exactly a ``step``), ``submit`` (a file
of the workspace with its note), ``status`` (iteration, budget, scores) and ``finish`` (ends the
episode; not ``done``, which is a bash reserved word). Every call that acts goes through
``env.step``, so the run directory records MCP sessions exactly as any other (``inspect``,
``report``, ``view``, diagnostics and ``resume`` read them unchanged).

Slow submissions: ``submit`` waits for the score (training takes seconds to minutes). A client
that gives up first loses nothing: the call runs in a worker thread that finishes and records the
scored iteration, and ``status`` reports it. Launchers raise their client's tool timeout above the
scoring time (``MCP_TOOL_TIMEOUT`` for Claude Code, ``tool_timeout_sec`` for Codex).
"""

from __future__ import annotations

import shlex
import threading
from typing import Any

import gymnasium as gym

#: The episode's tools (names the launchers allow).
TOOL_NAMES = ("brief", "bash", "submit", "status", "finish")


class EpisodeSession:
    """One episode behind a lock: the state the MCP tools share."""

    def __init__(self, env: gym.Env, *, seed: int = 0, agent: str | None = None) -> None:
        self.env = env
        self.seed = seed
        self.agent = agent
        self.lock = threading.Lock()
        self.info: dict[str, Any] = {}
        self.brief = ""
        self.ended = False
        self.last_scored: dict[str, Any] | None = None
        self.ready = threading.Event()
        self.failure: str | None = None

    def start_in_background(self) -> None:
        """Start the episode in a thread, so the server answers the client's handshake at once (a
        first world build takes minutes, longer than clients wait for a server to come up); tools
        wait for it."""

        def run() -> None:
            try:
                self.start()
            except Exception as exc:  # TaskUnavailable and the like: every tool call reports it
                self.failure = f"{type(exc).__name__}: {exc}"
            finally:
                self.ready.set()

        threading.Thread(target=run, name="curbench-episode-start", daemon=True).start()

    def wait_ready(self) -> None:
        """Block until the episode has started; a tool error if it could not."""
        from mcp.server.mcpserver.exceptions import ToolError

        self.ready.wait()
        if self.failure:
            raise ToolError(f"the episode could not start: {self.failure}")

    def start(self) -> str:
        """Reset the env (the world is built here on first use); returns the first observation, the
        agent's brief. (Over stdio the SDK's transport points fd 1 at stderr while it serves, so what
        the world build prints never reaches the protocol channel.)"""
        with self.lock:
            obs, self.info = self.env.reset(seed=self.seed, options={"agent": self.agent} if self.agent else None)
        self.brief = obs["output"]
        self.ready.set()
        return self.brief

    def step(self, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """One ``env.step``; an error the tool reports once the episode is over."""
        from mcp.server.mcpserver.exceptions import ToolError

        self.wait_ready()
        with self.lock:
            if self.ended:
                raise ToolError("the episode has ended; nothing more can be run or submitted")
            obs, _, terminated, truncated, self.info = self.env.step(action)
            self.ended = bool(terminated or truncated)
            sub = self.info.get("submission")
            if sub and sub.get("status") == "scored":
                self.last_scored = sub
            return obs, self.info

    def status(self) -> dict[str, Any]:
        """Where the episode stands (read only: no step is recorded)."""
        self.wait_ready()
        info = self.info
        out = {k: info.get(k) for k in ("iteration", "budget_left", "best_score", "best_iteration", "base_score",
                                        "last_score", "steps", "submission_budget", "submission_rules")}
        out["ended"] = self.ended
        if self.last_scored:
            out["last_scored"] = {k: self.last_scored.get(k) for k in ("iteration", "file", "average", "scores",
                                                                        "reward", "note")}
        return out


def build_server(session: EpisodeSession) -> Any:
    """An ``MCPServer`` with the episode's tools; its instructions are the agent's brief."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="curbench", instructions=session.brief or "Call the `brief` tool first: the task and its rules.")

    @server.tool()
    def brief() -> str:
        """The task: the curation README, the submission rules and budget, and any scaffold protocol.
        Read it first."""
        session.wait_ready()
        return session.brief

    @server.tool()
    def bash(command: str) -> str:
        """Run one shell command in the curation workspace (cwd and exported variables persist).

        The candidate pool is read-only at $POOL; write selection scripts and files here. Output is
        capped; long jobs must run in the foreground. Returns the output and the exit code.
        """
        obs, _ = session.step(command)
        return f"{obs['output'].rstrip()}\n[exit code {int(obs['exit_code'])}]"

    @server.tool()
    def submit(path: str, note: str = "") -> str:
        """Submit a file of selected examples (a workspace path) for training and scoring.

        ``note`` says what the selection policy does (scaffolds require a declaration there, e.g.
        "cite: el2n | instantiate: ... | adapt: ..."). Returns the per-benchmark scores; a refused
        submission (format, budget, audit, scaffold rule) is an error that says why.
        """
        command = f"submit {shlex.quote(path)}" + (f" --note {shlex.quote(note)}" if note else "")
        obs, info = session.step(command)
        sub = info.get("submission")
        if not sub or sub.get("status") != "scored":
            raise ToolError(obs["output"])
        return obs["output"]

    @server.tool()
    def status() -> dict[str, Any]:
        """The episode's state: iteration, submissions left, best and last scores, per-benchmark scores
        of the last scored submission, whether the episode has ended."""
        return session.status()

    @server.tool()
    def finish() -> str:
        """End the curation session (the best score so far is the result)."""
        obs, _ = session.step("done")
        return obs["output"]

    return server
