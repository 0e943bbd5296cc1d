"""The policy protocol the CLI, sweeps and baselines accept."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Policy(Protocol):
    """Anything with ``reset`` and ``act`` can play an episode.

    ``reset(obs, info)`` is called once with the first observation; ``act(obs, info)``
    returns the next shell command (a str). A policy may expose ``usage`` (a dict of token
    counts and cost) that the runner records in ``info`` and the run directory.
    """

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str: ...
