"""One episode as tools: the semantics every tool-calling front door shares.

``EpisodeSession`` turns a ``CurationEnv`` (or any wrapper of it) into the calls an agent makes:
``brief``, ``bash``, ``submit``, ``status`` and ``finish``. The MCP server (`curbench mcp`), the TRL
adapter (:mod:`curbench_env.integrations.trl`) and the OpenEnv server
(:mod:`curbench_env.integrations.openenv`) all sit on it, so a refusal reads the same, and is recorded
the same, whichever door the agent came through. Every call that acts is one ``env.step``.

A refused call raises :class:`ToolRefused` with the message ``step`` gives; each front door hands it
to its agent as a tool error.
"""

from __future__ import annotations

import shlex
import threading
from typing import Any

import gymnasium as gym

from curbench_env.errors import CurbenchError

#: The episode's tools (names the launchers and adapters expose).
TOOL_NAMES = ("brief", "bash", "submit", "status", "finish")

#: What ``status`` reports from ``info``.
STATUS_KEYS = ("iteration", "budget_left", "best_score", "best_iteration", "base_score", "last_score", "steps",
               "submission_budget", "submission_rules")


class ToolRefused(CurbenchError):
    """A tool call the episode refuses (the episode is over, a submission was not scored, the episode
    could not start); the message is for the agent."""


class EpisodeSession:
    """One episode behind a lock: the state the tools share.

    ``rewards`` holds the env's reward for every step taken through the session, so a trainer can read
    the episode's return (``sum(rewards)``) without a second bookkeeping of its own.
    """

    def __init__(self, env: gym.Env, *, seed: int | None = 0, agent: str | None = None) -> None:
        self.env = env
        self.seed = seed
        self.agent = agent
        self.lock = threading.Lock()
        self.info: dict[str, Any] = {}
        self.brief = ""
        self.ended = False
        self.last_scored: dict[str, Any] | None = None
        self.rewards: list[float] = []
        self.ready = threading.Event()
        self.failure: str | None = None

    def start_in_background(self) -> None:
        """Start the episode in a thread, so a server answers its client's handshake at once (a first
        world build takes minutes, longer than clients wait for a server to come up); tools wait for it."""

        def run() -> None:
            try:
                self.start()
            except Exception as exc:  # TaskUnavailable and the like: every tool call reports it
                self.failure = f"{type(exc).__name__}: {exc}"
            finally:
                self.ready.set()

        threading.Thread(target=run, name="curbench-episode-start", daemon=True).start()

    def wait_ready(self) -> None:
        """Block until the episode has started; :class:`ToolRefused` if it could not."""
        self.ready.wait()
        if self.failure:
            raise ToolRefused(f"the episode could not start: {self.failure}")

    def start(self) -> str:
        """Reset the env (the world is built here on first use); returns the first observation, the
        agent's brief."""
        with self.lock:
            obs, self.info = self.env.reset(seed=self.seed, options={"agent": self.agent} if self.agent else None)
        self.brief = obs["output"]
        self.ready.set()
        return self.brief

    def step(self, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """One ``env.step``; :class:`ToolRefused` once the episode is over."""
        self.wait_ready()
        with self.lock:
            if self.ended:
                raise ToolRefused("the episode has ended; nothing more can be run or submitted")
            obs, reward, terminated, truncated, self.info = self.env.step(action)
            self.rewards.append(float(reward))
            self.ended = bool(terminated or truncated)
            sub = self.info.get("submission")
            if sub and sub.get("status") == "scored":
                self.last_scored = sub
            return obs, self.info

    # -- the tools --------------------------------------------------------------------------------
    def bash(self, command: str) -> str:
        """Run one shell command in the workspace; its output and exit code."""
        obs, _ = self.step(command)
        return f"{obs['output'].rstrip()}\n[exit code {int(obs['exit_code'])}]"

    def submit(self, path: str, note: str = "") -> str:
        """Submit a workspace file with its note; the feedback, or :class:`ToolRefused` saying why it
        was not scored."""
        command = f"submit {shlex.quote(path)}" + (f" --note {shlex.quote(note)}" if note else "")
        obs, info = self.step(command)
        sub = info.get("submission")
        if not sub or sub.get("status") != "scored":
            raise ToolRefused(obs["output"])
        return obs["output"]

    def finish(self) -> str:
        """End the episode (the best score so far is the result)."""
        obs, _ = self.step("done")
        return obs["output"]

    def status(self) -> dict[str, Any]:
        """Where the episode stands (read only: no step is recorded)."""
        self.wait_ready()
        info = self.info
        out = {k: info.get(k) for k in STATUS_KEYS}
        out["ended"] = self.ended
        out.update({k: v for k, v in info.items() if k.startswith("rewrite")})  # the rewriting tool's budget, if any
        if self.last_scored:
            out["last_scored"] = {k: self.last_scored.get(k) for k in ("iteration", "file", "average", "scores",
                                                                        "reward", "note")}
        return out

    # -- what a trainer reads -----------------------------------------------------------------------
    def episode_reward(self, mode: str) -> float:
        """The episode's reward so far, in benchmark points: ``best`` (best − base, ≥ 0), ``final`` (last
        scored − base; 0 before any) or ``delta`` (the sum of the env's step rewards, by its
        ``reward_mode``)."""
        if mode == "delta":
            return float(sum(self.rewards))
        base = self.info.get("base_score")
        if base is None:
            return 0.0
        if mode == "best":
            return max(0.0, float(self.info.get("best_score", base)) - float(base))
        if mode == "final":
            return float(self.last_scored["average"]) - float(base) if self.last_scored else 0.0
        raise ValueError(f"reward_mode must be 'best', 'final' or 'delta', not {mode!r}")

    def close(self) -> None:
        """Close the env (stops its workspace and closes the run directory)."""
        with self.lock:
            self.env.close()
