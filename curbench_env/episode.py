"""The episode's score state and its one reward rule, used live and when a run is resumed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from curbench_env.config import EpisodeConfig, RewardMode


@dataclass(frozen=True)
class EpisodeState:
    """Scores of one episode so far: what a scored submission changes, nothing else."""

    base_score: float
    reward_mode: RewardMode = "best"
    iteration: int = 0
    best_score: float = 0.0
    last_score: float = 0.0
    best_iteration: int | None = None

    @classmethod
    def start(cls, base_score: float, reward_mode: RewardMode = "best") -> EpisodeState:
        """Before any submission: best and last are the base model's score."""
        return cls(base_score=base_score, reward_mode=reward_mode, best_score=base_score, last_score=base_score)

    @classmethod
    def replay(cls, base_score: float, reward_mode: RewardMode, outcomes: Iterable[float | None]) -> EpisodeState:
        """The state after the recorded iterations, in order: a score, or None for an iteration spent
        without one (a contaminated submission). What resume rebuilds."""
        state = cls.start(base_score, reward_mode)
        for score in outcomes:
            state = state.spent() if score is None else state.scored(score)[0]
        return state

    def spent(self) -> EpisodeState:
        """The state after an iteration spent without a score (reward 0)."""
        return dataclasses.replace(self, iteration=self.iteration + 1)

    def reward(self, score: float) -> float:
        """The reward of a submission scoring ``score`` now, by ``reward_mode``."""
        if self.reward_mode == "best":
            return max(0.0, score - self.best_score)
        if self.reward_mode == "previous":
            return score - self.last_score
        return score - self.base_score

    def scored(self, score: float) -> tuple[EpisodeState, float]:
        """The state after one more scored submission, and its reward."""
        iteration = self.iteration + 1
        # The first scored iteration is the best one even when it only ties the base model.
        better = score > self.best_score or (self.best_iteration is None and score >= self.best_score)
        state = dataclasses.replace(
            self, iteration=iteration, last_score=score,
            best_score=score if better else self.best_score,
            best_iteration=iteration if better else self.best_iteration)
        return state, self.reward(score)


def episode_end(config: EpisodeConfig, state: EpisodeState, steps: int, elapsed_s: float,
                ended_by_agent: bool = False) -> tuple[str, bool, bool]:
    """(message, terminated, truncated) after a step: budget spent or `done` terminate; step and
    wall-clock limits truncate."""
    if ended_by_agent:
        return "", True, False
    if state.iteration >= config.iteration_budget:
        return f"\n\nIteration budget spent ({config.iteration_budget} scored submissions). Episode over.", True, False
    if steps >= config.max_steps:
        return f"\n\nStep limit reached ({config.max_steps} steps). Episode truncated.", False, True
    if config.max_wall_clock_s and elapsed_s > config.max_wall_clock_s:
        return f"\n\nWall-clock limit reached ({config.max_wall_clock_s:g}s). Episode truncated.", False, True
    return "", False, False
