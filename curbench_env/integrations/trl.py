"""TRL: a curation episode as an ``environment_factory`` for ``GRPOTrainer`` (TRL ≥ 1.x).

```python
from trl import GRPOConfig, GRPOTrainer
from curbench_env.integrations.trl import CurationTRLEnv, rollout_dataset

dataset = rollout_dataset("Curation-MiniVQA-v0", seeds=range(64), task_args={"preset": "tiny"})
trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=dataset,
                      environment_factory=CurationTRLEnv)
```

TRL builds one instance per rollout (instances are pooled and reused), calls
``reset(**row)`` with the dataset row's columns, exposes the public methods ``bash``, ``submit``,
``status`` and ``finish`` as the model's tools (named tools, as TRL advises), and reads the rollout's
reward from ``get_reward()``. Every rollout is an ordinary episode with its own sandbox and run
directory, so ``curbench inspect``/``report``/``view`` read training rollouts like any other run.

TRL calls tools one rollout at a time; the scorer's content-hash cache makes the identical
submissions of a GRPO group (same row, same seed) cost one training, and the machine's scoring queue
(:func:`curbench_env.scorer.scoring_slot`) keeps concurrent trainers from thrashing the CPU.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from curbench_env.session import EpisodeSession

#: How the rollout's reward is read from the episode (points of the benchmark average).
REWARD_MODES = ("best", "final", "delta")

DEFAULT_PROMPT = (
    "You are a data-curation agent. Use the tools: `bash` runs a shell command in your workspace, "
    "`submit` sends a file of selected examples for training and scoring, `status` shows the budget "
    "and scores, `finish` ends the session. Beat the base model's score."
)


def _task_args(value: dict[str, Any] | str | None) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"task_args must be a dict or a JSON object, not {value!r}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"task_args must be a dict or a JSON object, not {type(value).__name__}")
    return {k: v for k, v in value.items() if v is not None}  # dataset columns fill absent keys with None


def _scaffolds(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value if s]


def _commands(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            loaded = json.loads(value)
            if not isinstance(loaded, list) or not all(isinstance(c, str) for c in loaded):
                raise ValueError("setup must be a command, a list of commands or a JSON list of them")
            return loaded
        return [value]
    return [str(c) for c in value]


class CurationTRLEnv:
    """One curation episode per rollout, for ``GRPOTrainer(environment_factory=CurationTRLEnv)``.

    Attributes:
        reward: The rollout's reward so far, in benchmark points, by ``reward_mode``: ``best`` (best
            score − base, ≥ 0; the default), ``final`` (last scored − base) or ``delta`` (the sum of
            the env's step rewards).
        run_dir: The episode's run directory.
    """

    def __init__(self) -> None:
        self._session: EpisodeSession | None = None
        self._finalizer: weakref.finalize | None = None
        self.reward = 0.0
        self.reward_mode = "best"
        self.run_dir: str | None = None

    def reset(self, env_id: str, seed: int | None = None, task_args: dict[str, Any] | str | None = None,
              scaffold: str | Sequence[str] | None = None, reward_mode: str = "best",
              iteration_budget: int | None = None, max_steps: int | None = None, backend: str = "auto",
              setup: str | Sequence[str] | None = None, brief: str = "full", **row: Any) -> str:
        """Start a fresh episode (the previous one of this instance is closed) and return its brief.

        ``setup``: shell commands run (and recorded) before the model's first turn, so every rollout of
        a group starts from the same workspace (e.g. helper scripts written in); JSON list or one
        command. A failing setup command is an error. ``brief``: ``full`` (the whole first observation:
        session rules, task README, scaffold texts) or ``short`` (the session rules only, pointing at
        ./README.md in the workspace: for small models with short contexts). ``row`` takes the dataset's other columns
        (``prompt`` and the like), which are not the env's.
        """
        from curbench_env.runner import make_env

        if brief not in ("full", "short"):
            raise ValueError(f"brief must be 'full' or 'short', not {brief!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {', '.join(REWARD_MODES)}, not {reward_mode!r}")
        self._close()
        kwargs: dict[str, Any] = {} if max_steps is None else {"max_steps": int(max_steps)}
        env = make_env(env_id, task_args=_task_args(task_args), scaffolds=_scaffolds(scaffold), backend=backend,
                       iteration_budget=iteration_budget, **kwargs)
        self._session = EpisodeSession(env, seed=0 if seed is None else int(seed), agent="trl")
        self._finalizer = weakref.finalize(self, env.close)
        self.reward, self.reward_mode = 0.0, reward_mode
        try:
            text = self._session.start()
            for command in _commands(setup):
                obs, _ = self._session.step(command)
                if int(obs["exit_code"]) != 0:
                    raise RuntimeError(f"setup command failed (exit {int(obs['exit_code'])}): {command[:200]}\n"
                                       f"{obs['output'][-2000:]}")
        except BaseException:
            self._close()
            raise
        root = env.unwrapped.run_dir
        self.run_dir = str(root) if root else None
        if brief == "short":
            header = text.split("\n\n", 1)[0]
            return header + "\nThe task README (the pool, its fields, the benchmarks) is ./README.md in your workspace."
        return text

    # -- tools (TRL turns these into the model's tools; their docstrings are the schema) ------------
    def bash(self, command: str) -> str:
        """Run one shell command in the curation workspace (cwd and exported variables persist).

        The candidate pool is read-only at $POOL; write selection scripts and files in the workspace.
        Output is capped.

        Args:
            command: The shell command, e.g. `head -3 $POOL/pool.jsonl` or `python select.py`.

        Returns:
            The command's output and its exit code.
        """
        try:
            return self._live().bash(command)
        finally:
            self._update_reward()

    def submit(self, path: str, note: str = "") -> str:
        """Submit a file of selected examples for training and scoring (one iteration of the budget).

        Args:
            path: The workspace path of the file of selected examples.
            note: What the selection policy does, in a sentence.

        Returns:
            The per-benchmark scores and their average; an error says why a submission was refused.
        """
        try:
            return self._live().submit(path, note)
        finally:
            self._update_reward()

    def status(self) -> str:
        """The episode's state: iterations used and left, the base, best and last scores.

        Returns:
            The state as JSON.
        """
        return json.dumps(self._live().status(), sort_keys=True, default=str)

    def finish(self) -> str:
        """End the curation session; the best score so far is the result.

        Returns:
            The episode's closing summary.
        """
        try:
            return self._live().finish()
        finally:
            self._update_reward()

    def get_reward(self) -> float:
        """The rollout's reward (TRL reads it after the rollout)."""
        return float(self.reward)

    # -- private ---------------------------------------------------------------------------------
    def _live(self) -> EpisodeSession:
        if self._session is None:
            raise RuntimeError("no episode: reset(env_id=...) first")
        return self._session

    def _update_reward(self) -> None:
        if self._session is not None:
            self.reward = self._session.episode_reward(self.reward_mode)

    def _close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the env once, here or at garbage collection
        self._session, self._finalizer = None, None

    def __getstate__(self) -> dict[str, Any]:
        """Pickles as a fresh instance with the same reward mode (a live sandbox does not travel)."""
        return {"reward_mode": self.reward_mode}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()
        self.reward_mode = state.get("reward_mode", "best")


def rollout_dataset(env_id: str, *, seeds: Iterable[int] = range(8), task_args: dict[str, Any] | None = None,
                    scaffold: str | None = None, reward_mode: str = "best", iteration_budget: int | None = None,
                    max_steps: int | None = None, setup: Sequence[str] = (), brief: str = "full",
                    prompt: str = DEFAULT_PROMPT) -> Any:
    """A ``datasets.Dataset`` of rollout rows for ``GRPOTrainer``: a conversational ``prompt`` (the
    env's brief is appended to it at reset) and the columns ``CurationTRLEnv.reset`` takes, one row
    per seed. ``task_args`` travels as JSON so rows with different arguments share one column type."""
    from datasets import Dataset

    rows = []
    for seed in seeds:
        row: dict[str, Any] = {"prompt": [{"role": "user", "content": prompt + "\n\n"}], "env_id": env_id,
                               "seed": int(seed), "task_args": json.dumps(task_args or {}, sort_keys=True),
                               "scaffold": scaffold or "", "reward_mode": reward_mode}
        if iteration_budget is not None:
            row["iteration_budget"] = int(iteration_budget)
        if max_steps is not None:
            row["max_steps"] = int(max_steps)
        if setup:
            row["setup"] = json.dumps(list(setup))
        if brief != "full":
            row["brief"] = brief
        rows.append(row)
    return Dataset.from_list(rows)
