"""Typed configuration of an episode. Defaults live here and nowhere else."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

RewardMode = Literal["best", "previous", "base"]
BackendName = Literal["auto", "bwrap", "docker", "local"]


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of the workspace: per command (time, output), per process (file size, open files) and,
    where the machine has cgroups, for the whole sandbox at once (memory, processes); the disk use of
    the workspace is a quota checked while commands run."""

    command_timeout_s: float = 120.0
    output_cap_bytes: int = 256_000
    max_processes: int = 256
    memory_bytes: int = 8 << 30
    file_size_bytes: int = 1 << 30
    open_files: int = 1024
    workspace_bytes: int = 4 << 30


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode runs: budgets, limits, reward shaping and where it is recorded."""

    iteration_budget: int = 10
    max_steps: int = 300
    max_wall_clock_s: float | None = None
    reward_mode: RewardMode = "best"
    backend: BackendName = "auto"
    observation_chars: int = 16_000
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    docker_image: str = "python:3.11-slim"
    #: A submission the leakage audit refuses spends its iteration (no score, reward 0); False: free retry.
    contamination_spends_iteration: bool = True

    def __post_init__(self) -> None:
        if self.reward_mode not in ("best", "previous", "base"):
            raise ValueError(f"reward_mode must be 'best', 'previous' or 'base', not {self.reward_mode!r}")
        if isinstance(self.limits, dict):  # plain data from a caller or config.json
            object.__setattr__(self, "limits", SandboxLimits(**self.limits))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the run directory's config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown episode option(s): {', '.join(sorted(unknown))}")
        return cls(**{"limits": {}, **data})


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild an episode, written once to config.json and read back on resume."""

    env_id: str
    task: str
    task_kwargs: dict[str, Any]
    episode: EpisodeConfig
    seed: int = 0
    task_info: dict[str, Any] = field(default_factory=dict)
    scaffolds: tuple[str, ...] = ()
    agent: str | None = None
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the config.json layout)."""
        data = dataclasses.asdict(self)
        data["episode"] = self.episode.to_dict()
        data["scaffolds"] = list(self.scaffolds)
        return data

    @classmethod
    def new(cls, options: dict[str, Any] | None = None, **fields: Any) -> RunConfig:
        """The config of an episode starting now; ``options`` are reset's (``scaffolds``, ``agent``)."""
        options = options or {}
        return cls(scaffolds=tuple(options.get("scaffolds") or ()), agent=options.get("agent"),
                   created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Read a config.json (older run directories lack scaffolds/agent: they default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["episode"] = EpisodeConfig.from_dict(known.get("episode") or {})
        known["scaffolds"] = tuple(known.get("scaffolds") or ())
        known["task_kwargs"] = dict(known.get("task_kwargs") or {})
        return cls(**known)
