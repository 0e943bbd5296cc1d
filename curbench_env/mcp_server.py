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

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from curbench_env.session import TOOL_NAMES, EpisodeSession, ToolRefused

__all__ = ["TOOL_NAMES", "EpisodeSession", "build_server"]

T = TypeVar("T")


def _as_tool_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """A refused call reaches the MCP client as a tool error with the episode's own message."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ToolRefused as exc:
            raise ToolError(str(exc)) from None

    return call


def build_server(session: EpisodeSession) -> Any:
    """An ``MCPServer`` with the episode's tools; its instructions are the agent's brief."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="curbench", instructions=session.brief or "Call the `brief` tool first: the task and its rules.")

    @server.tool()
    @_as_tool_errors
    def brief() -> str:
        """The task: the curation README, the submission rules and budget, and any scaffold protocol.
        Read it first."""
        session.wait_ready()
        return session.brief

    @server.tool()
    @_as_tool_errors
    def bash(command: str) -> str:
        """Run one shell command in the curation workspace (cwd and exported variables persist).

        The candidate pool is read-only at $POOL; write selection scripts and files here. Output is
        capped; long jobs must run in the foreground. Returns the output and the exit code.
        """
        return session.bash(command)

    @server.tool()
    @_as_tool_errors
    def submit(path: str, note: str = "") -> str:
        """Submit a file of selected examples (a workspace path) for training and scoring.

        ``note`` says what the selection policy does (scaffolds require a declaration there, e.g.
        "cite: el2n | instantiate: ... | adapt: ..."). Returns the per-benchmark scores; a refused
        submission (format, budget, audit, scaffold rule) is an error that says why.
        """
        return session.submit(path, note)

    @server.tool()
    @_as_tool_errors
    def status() -> dict[str, Any]:
        """The episode's state: iteration, submissions left, best and last scores, per-benchmark scores
        of the last scored submission, whether the episode has ended."""
        return session.status()

    @server.tool()
    @_as_tool_errors
    def finish() -> str:
        """End the curation session (the best score so far is the result)."""
        return session.finish()

    return server
